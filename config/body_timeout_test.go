package config

import (
	"testing"
	"time"
)

// TestBodyTimeout: server.body_timeout defaults to 10s, keeps a value the
// file sets, and must be positive (0 would let a slow body hold a worker).
func TestBodyTimeout(t *testing.T) {
	tests := []struct {
		name string
		yaml string // lines under server:, "" for none
		want time.Duration
		errs []string
	}{
		{"default", "", DefaultBodyTimeout, nil},
		{"set", "  body_timeout: 250ms\n", 250 * time.Millisecond, nil},
		{"zero", "  body_timeout: 0s\n", 0, []string{"server.body_timeout: 0s is not positive: set how long a client may take to send a body the gateway reads itself, like 10s"}},
		{"negative", "  body_timeout: -1s\n", -time.Second, []string{"server.body_timeout: -1s is not positive"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := baseYAML
			if tc.yaml != "" {
				text = "server:\n" + tc.yaml + baseYAML
			}
			c := parseInDir(t, text)
			if got := c.Server.BodyTimeout.D(); got != tc.want {
				t.Errorf("body_timeout = %v, want %v", got, tc.want)
			}
			err := c.Validate()
			if tc.errs == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			assertProblems(t, err, tc.errs)
		})
	}
}
