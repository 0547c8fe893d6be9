package config

import (
	"slices"
	"testing"
	"time"
)

// TestOperationsKeys covers the keys that shape how tokengate runs in a
// cluster: log.subjects and server.shutdown_delay.
func TestOperationsKeys(t *testing.T) {
	tests := []struct {
		name         string
		yaml         string
		wantSubjects bool
		wantDelay    time.Duration
		wantProblems []string
	}{
		{"defaults", "", false, 0, nil},
		{"set", "log: {subjects: true}\nserver: {shutdown_delay: 5s}\n", true, 5 * time.Second, nil},
		{"negative delay", "server: {shutdown_delay: -1s}\n", false, -time.Second,
			[]string{"server.shutdown_delay: -1s is negative: use 0s or more, like 5s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := parseInDir(t, baseYAML+tc.yaml)
			if c.Log.Subjects != tc.wantSubjects || c.Server.ShutdownDelay.D() != tc.wantDelay {
				t.Errorf("subjects %v, shutdown_delay %s; want %v, %s", c.Log.Subjects, c.Server.ShutdownDelay, tc.wantSubjects, tc.wantDelay)
			}
			got := messages(t, c.Validate())
			if !slices.Equal(got, tc.wantProblems) {
				t.Errorf("problems = %q, want %q", got, tc.wantProblems)
			}
		})
	}
	if _, err := Parse([]byte(baseYAML+"log: {subjects: yes}\n"), t.TempDir(), lookupTestEnv); err == nil {
		t.Error("log.subjects: yes was accepted; booleans are true or false")
	}
}
