package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// runCheck implements `tokengate check --config FILE`: every problem on its
// own line with its key path, exit status 1 when there is any.
func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file to validate")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	if *path == "" {
		fmt.Fprintln(stderr, "check: --config FILE is required")
		return &exitError{code: 2}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		printProblems(stderr, *path, err)
		return &exitError{code: 1}
	}
	fmt.Fprintf(stdout, "%s: OK (%d issuers, %d routes, exchange mode %s)\n",
		*path, len(cfg.Issuers), len(cfg.Routes), cfg.Exchange.Mode)
	return nil
}

// loadConfig loads and validates a configuration file, then loads its signing
// keys, so that a key file that cannot be used is reported like any other
// configuration problem, before a server starts.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if cfg.Exchange.Mode == config.ModeLocal {
		if _, err := exchange.NewKeySet(cfg.Exchange.Local.SigningKeys); err != nil {
			return nil, &config.FieldError{Path: "exchange.local.signing_keys", Msg: err.Error()}
		}
	}
	if r := cfg.Exchange.Remote; cfg.Exchange.Mode == config.ModeRemote && r.AuthMethod == config.AuthPrivateKeyJWT {
		if _, err := exchange.LoadClientKey(r.PrivateKey); err != nil {
			return nil, &config.FieldError{Path: "exchange.remote.private_key", Msg: err.Error()}
		}
	}
	return cfg, nil
}

// printProblems writes one line per problem (errors.Join keeps them apart).
func printProblems(w io.Writer, path string, err error) {
	problems := unjoin(err)
	fmt.Fprintf(w, "%s: %d problem(s):\n", path, len(problems))
	for _, p := range problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

// unjoin flattens errors.Join trees into their leaves.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
