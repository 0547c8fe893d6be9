package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	build "github.com/tokengate/tokengate/internal/server"
)

// runCheck implements `tokengate check --config FILE`: every problem on its
// own line with its key path, exit status 1 when there is any. With
// --explain TOKEN_FILE ("-" for stdin) it then explains what the gateway
// would do with that umbrella token (explain.go).
func runCheck(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file to validate")
	tokenFile := fs.String("explain", "", `file holding an umbrella token to explain ("-" reads stdin)`)
	noVerify := fs.Bool("no-verify", false, "with --explain: do not check the signature (explain from unverified claims)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	if *path == "" {
		fmt.Fprintln(stderr, "check: --config FILE is required")
		return &exitError{code: 2}
	}
	if *noVerify && *tokenFile == "" {
		fmt.Fprintln(stderr, "check: --no-verify only applies with --explain TOKEN_FILE")
		return &exitError{code: 2}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		printProblems(stderr, *path, err)
		return &exitError{code: 1}
	}
	for _, w := range cfg.DPoPWarnings() {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, w)
	}
	if *tokenFile == "" {
		fmt.Fprintf(stdout, "%s: OK (%d issuers, %d routes, exchange mode %s)\n",
			*path, len(cfg.Issuers), len(cfg.Routes), cfg.Exchange.Mode)
		return nil
	}
	raw, err := readToken(*tokenFile, stdin, cfg.Server.MaxTokenBytes)
	if err != nil {
		fmt.Fprintln(stderr, "check:", err)
		return &exitError{code: 1}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	err = explain(ctx, explainOptions{
		cfg:        cfg,
		raw:        raw,
		noVerify:   *noVerify,
		now:        time.Now,
		httpClient: &http.Client{Transport: transport, Timeout: 30 * time.Second},
		out:        stdout,
	})
	if err != nil {
		fmt.Fprintln(stderr, "check:", err)
		return &exitError{code: 1}
	}
	return nil
}

// loadConfig loads and validates a configuration file, then builds it
// offline through internal/server, the build serve runs, and releases it:
// a file that cannot be used (a signing key, a client key, a TLS
// certificate) is reported like any other configuration problem, with its
// key path, and check, serve, a reload and the demo refuse exactly the same
// configurations.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	gen, err := buildOffline(context.Background(), cfg, build.ProcessOptions{}, build.Options{})
	if err != nil {
		return nil, err
	}
	gen.Close()
	return cfg, nil
}

// buildOffline builds cfg through internal/server without starting
// anything (no prefetch, no Redis listener: nothing is dialled), on a
// process of its own whose metrics and logs go nowhere.
func buildOffline(ctx context.Context, cfg *config.Config, po build.ProcessOptions, bo build.Options) (*build.Generation, error) {
	p, err := build.NewProcess(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), po)
	if err != nil {
		return nil, err
	}
	bo.Offline = true
	return build.Build(ctx, p, cfg, nil, bo)
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
