// Command tokengate is the edge token-exchange gateway: it verifies one umbrella
// token, exchanges it for a single-audience token per API, and forwards the
// request. See README.md and docs/ for the commands and the configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = ""
	commit  = ""
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var exit *exitError
		if errors.As(err, &exit) {
			if exit.msg != "" {
				fmt.Fprintln(os.Stderr, exit.msg)
			}
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, "tokengate:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a status and an optional message, for
// outcomes that are not failures of the program itself (a usage error, a
// configuration with problems already printed).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return fmt.Sprintf("exit %d: %s", e.code, e.msg) }

const usage = `tokengate: one umbrella token in, one single-audience token per API out.

Usage:
  tokengate serve --config FILE [--watch=false]
                                    run the gateway (SIGHUP or a change of FILE reloads it,
                                    SIGTERM drains)
  tokengate check --config FILE     validate FILE and print every problem
  tokengate check --config FILE --explain TOKEN_FILE [--no-verify]
                                    explain which routes an umbrella token reaches
                                    and what each exchanged token holds ("-" = stdin)
  tokengate demo [--listen ADDR]    run a self-contained demo on loopback
  tokengate keys generate --alg ALG --out FILE
                                    write a new PEM private key (ES256, RS256, PS256, EdDSA)
  tokengate version                 print version, commit and Go version
`

// run is main without the process: tests call it with their own arguments and
// writers. ctx ends the long-running commands.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "check":
		return runCheck(ctx, args[1:], os.Stdin, stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "keys":
		return runKeys(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		v, c := buildVersion()
		fmt.Fprintf(stdout, "tokengate %s (commit %s, %s)\n", v, c, runtime.Version())
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "tokengate: unknown command %q\n\n%s", args[0], usage)
		return &exitError{code: 2}
	}
}

// buildVersion returns the version and commit from ldflags, else from the
// module build information, else "dev".
func buildVersion() (string, string) {
	v, c := version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if c == "" {
		c = "unknown"
	}
	return v, c
}
