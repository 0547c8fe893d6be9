// Command tokengate-bench is tokengate's load benchmark (`make loadtest`).
// On loopback it starts an echo backend, a bare httputil.ReverseProxy with
// the gateway's own transport tuning and buffer pool, and tokengate itself
// (the real binary, `tokengate serve`, with a dev IdP and signing key), then
// drives the two proxies alternately, round by round, over a fixed number of
// keep-alive connections and prints requests/s, p50/p99 latency and CPU per
// request for each, and the ratios tokengate/bare as medians over rounds.
// These machines are noisy: only ratios measured side by side mean much.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// options are the command's flags.
type options struct {
	rounds        int
	duration      time.Duration
	conns         int
	scenarios     string
	tokengate     string
	logLevel      string
	missTokens    int
	memoryEntries int
	spreadTokens  int
	// tracing is tracing.sample_ratio ("" = tracing off); spans go to an
	// OTLP receiver in this process that discards them.
	tracing string
	// tracingRatio is the traced side's sample_ratio in the tracing scenario.
	tracingRatio string
	// oauth2Proxy is an oauth2-proxy binary for the oauth2proxy scenario;
	// "" skips it (it is a big build: make loadtest never builds it).
	oauth2Proxy string
}

func main() {
	if runChild() {
		return
	}
	var o options
	fs := flag.NewFlagSet("tokengate-bench", flag.ExitOnError)
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each round measures every target once, in alternating order")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "load duration per target per round")
	fs.IntVar(&o.conns, "conns", 16, "keep-alive connections (one closed-loop worker each)")
	fs.StringVar(&o.scenarios, "scenarios", "hit,miss,spread,stream,grpc,tracing,redis,memory,forwardauth,oauth2proxy", "comma-separated scenarios: "+strings.Join(scenarioNames(), ","))
	fs.StringVar(&o.tokengate, "tokengate", "", "tokengate binary (default: go build ./cmd/tokengate into a temporary directory)")
	fs.StringVar(&o.logLevel, "log-level", "info", "tokengate's log.level (info writes one access log line per request, as in production)")
	fs.IntVar(&o.missTokens, "miss-tokens", 0, "umbrella tokens pre-minted per round for the miss scenario (default 6000 per second of -duration)")
	fs.IntVar(&o.spreadTokens, "spread-tokens", 1000, "distinct umbrella tokens of the spread and redis scenarios (each used on every route)")
	fs.IntVar(&o.memoryEntries, "memory-entries", 1_000_000, "entries for the memory scenario")
	fs.StringVar(&o.tracingRatio, "tracing-ratio", "0.01", "tracing.sample_ratio of the traced tokengate in the tracing scenario")
	fs.StringVar(&o.tracing, "tracing", "", "tracing.sample_ratio of tokengate, like 0.01 (spans go to a local OTLP receiver that discards them); \"\" = tracing off")
	fs.StringVar(&o.oauth2Proxy, "oauth2-proxy", "", "oauth2-proxy binary for the oauth2proxy scenario (GOBIN=$PWD/bin go install github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6); \"\" or a missing file skips it")
	fs.Parse(os.Args[1:])
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tokengate-bench:", err)
		os.Exit(1)
	}
}

// run sets everything up, runs the scenarios and prints their tables.
func run(o options, out io.Writer) error {
	if o.rounds < 1 || o.conns < 1 || o.duration <= 0 || o.spreadTokens < 1 {
		return fmt.Errorf("-rounds, -conns, -duration and -spread-tokens must be positive")
	}
	if o.missTokens == 0 {
		o.missTokens = int(6000 * o.duration.Seconds())
	}
	names := strings.Split(o.scenarios, ",")
	for _, n := range names {
		if _, ok := scenarios[n]; !ok {
			return fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(scenarioNames(), ","))
		}
	}
	fmt.Fprintf(out, "tokengate-bench: %d CPUs (%s), GOMAXPROCS %d, %s, %d rounds x %s per target, %d keep-alive connections, tokengate log level %s, tracing %s\n",
		runtime.NumCPU(), cpuModel(), runtime.GOMAXPROCS(0), runtime.Version(), o.rounds, o.duration, o.conns, o.logLevel, tracingLabel(o.tracing))
	env, err := newEnv(o)
	if err != nil {
		return err
	}
	defer env.close()
	for _, n := range names {
		fmt.Fprintf(out, "\n== %s: %s\n", n, scenarios[n].about)
		if err := scenarios[n].run(env, out); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func tracingLabel(ratio string) string {
	if ratio == "" {
		return "off"
	}
	return "sample_ratio " + ratio
}
