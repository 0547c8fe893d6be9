package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the bare proxy child, as the
// command's own binary does.
func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	os.Exit(m.Run())
}

// TestSmoke runs one very short round of the cheap scenarios end to end
// (building tokengate, both proxies as processes, the memory tier on a few
// entries) so the tool does not rot. It asserts that every table and ratio
// line is printed, never a timing.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tokengate")
	}
	var out strings.Builder
	err := run(options{rounds: 1, duration: 100 * time.Millisecond, conns: 2, scenarios: "hit,miss,spread,stream,grpc,tracing,memory,redis,forwardauth,oauth2proxy",
		logLevel: "warn", tracingRatio: "0.5", missTokens: 200, memoryEntries: 2000, spreadTokens: 5}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"hit ratios tokengate/bare", "miss ratios tokengate/bare", "crypto floor (verify+sign)",
		"spread ratios tokengate/bare", "stream ratios tokengate/bare", "grpc ratios tokengate/bare-h2c", "tracing ratios tokengate-traced-0.5/tokengate",
		"forwardauth ratios tokengate-authz/bare", "oauth2proxy: skipped", "memory: 2000 entries", "GC CPU fraction while filling", "GC CPU per op amortized", "redis",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
