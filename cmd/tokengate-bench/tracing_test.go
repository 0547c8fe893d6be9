package main

import (
	"strings"
	"testing"
	"time"
)

// TestSmokeTracing: -tracing runs tokengate with tracing on, exporting to
// the in-process sink; the hit scenario still prints its ratios.
func TestSmokeTracing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs tokengate")
	}
	var out strings.Builder
	err := run(options{rounds: 1, duration: 100 * time.Millisecond, conns: 2, scenarios: "hit",
		logLevel: "warn", spreadTokens: 5, tracing: "1"}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"tracing sample_ratio 1", "hit ratios tokengate/bare"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
