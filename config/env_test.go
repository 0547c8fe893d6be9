package config

import (
	"strings"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	tests := []struct {
		name     string
		in, want string
		changed  bool
		problems []string // substrings, one per problem
	}{
		{name: "no reference", in: "plain", want: "plain"},
		{name: "dollar without brace is kept", in: "pa$$word$x", want: "pa$$word$x"},
		{name: "whole value", in: "${SET}", want: "value", changed: true},
		{name: "inside text", in: "http://${SET}:80/${N}", want: "http://value:80/42", changed: true},
		{name: "empty value is allowed", in: "a${EMPTY}b", want: "ab", changed: true},
		{name: "escape", in: "$${SET}", want: "${SET}", changed: true},
		{name: "escape then variable", in: "$${SET}-${SET}", want: "${SET}-value", changed: true},
		{name: "triple dollar", in: "$$${SET}", want: "$${SET}", changed: true},
		{name: "value is not expanded again", in: "${INJECT}", want: testEnv["INJECT"], changed: true},
		{name: "unset", in: "${NOPE}", want: "${NOPE}", problems: []string{"environment variable NOPE is not set"}},
		{name: "every unset one", in: "${NOPE}${SET}${NADA}", want: "${NOPE}${SET}${NADA}",
			problems: []string{"NOPE is not set", "NADA is not set"}},
		{name: "unterminated", in: "x${SET", want: "x${SET", problems: []string{`has no closing "}"`}},
		{name: "empty name", in: "${}", want: "${}", problems: []string{"names no variable"}},
		{name: "bad character", in: "${A-B}", want: "${A-B}", problems: []string{"cannot be in a variable name"}},
		{name: "leading digit", in: "${1A}", want: "${1A}", problems: []string{"cannot be in a variable name"}},
		{name: "nested", in: "${A${B}}", want: "${A${B}}", problems: []string{"cannot be in a variable name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, probs := expandEnv(tt.in, lookupTestEnv)
			if got != tt.want || changed != tt.changed {
				t.Errorf("expandEnv(%q) = %q, %v; want %q, %v", tt.in, got, changed, tt.want, tt.changed)
			}
			if len(probs) != len(tt.problems) {
				t.Fatalf("problems = %q, want %d like %q", probs, len(tt.problems), tt.problems)
			}
			for i, p := range tt.problems {
				if !strings.Contains(probs[i], p) {
					t.Errorf("problem %d = %q, want it to contain %q", i, probs[i], p)
				}
			}
		})
	}
}

func TestExpandEnvNilLookup(t *testing.T) {
	_, _, probs := expandEnv("${SET}", nil)
	if len(probs) != 1 || !strings.Contains(probs[0], "SET is not set") {
		t.Fatalf("problems = %q, want SET is not set", probs)
	}
}

// TestParseEnv checks expansion in place: in values only, typed by the
// target, and never able to add YAML structure.
func TestParseEnv(t *testing.T) {
	tests := []struct {
		name  string
		patch string    // appended to the base
		edit  [2]string // old, new: a replacement in the base
		check func(t *testing.T, c *Config)
	}{
		{
			name:  "string value",
			patch: `log: {level: "${SET}"}`,
			check: func(t *testing.T, c *Config) { wantEqual(t, c.Log.Level, "value") },
		},
		{
			name:  "into an int",
			patch: "cache:\n  max_entries: ${N}",
			check: func(t *testing.T, c *Config) { wantEqual(t, c.Cache.MaxEntries, 42) },
		},
		{
			name:  "quoted, into an int",
			patch: `cache: {max_entries: "${N}"}`,
			check: func(t *testing.T, c *Config) { wantEqual(t, c.Cache.MaxEntries, 42) },
		},
		{
			name:  "into a duration",
			patch: "cache:\n  refresh_before: ${TTL}",
			check: func(t *testing.T, c *Config) { wantEqual(t, c.Cache.RefreshBefore.String(), "2m0s") },
		},
		{
			name:  "a number stays a string in a string field",
			patch: "log:\n  level: ${N}",
			check: func(t *testing.T, c *Config) { wantEqual(t, c.Log.Level, "42") },
		},
		{
			name:  "injection stays one string",
			patch: "log:\n  format: ${INJECT}",
			check: func(t *testing.T, c *Config) {
				wantEqual(t, c.Log.Format, testEnv["INJECT"])
				wantEqual(t, c.Server.Listen, DefaultListen)
			},
		},
		{
			name:  "escape",
			patch: `log: {level: "$${SET}"}`,
			check: func(t *testing.T, c *Config) { wantEqual(t, c.Log.Level, "${SET}") },
		},
		{
			name:  "escape through an alias is unescaped once",
			patch: "log: {level: &l \"$${SET}\", format: *l}",
			check: func(t *testing.T, c *Config) {
				wantEqual(t, c.Log.Level, "${SET}")
				wantEqual(t, c.Log.Format, "${SET}")
			},
		},
		{
			name:  "keys are not expanded",
			patch: "log: {level: info}\n# ${NOPE} in a comment is not a value",
			check: func(t *testing.T, c *Config) { wantEqual(t, c.Log.Level, "info") },
		},
		{
			name:  "in a list",
			edit:  [2]string{"scopes: [orders:read]", `scopes: [orders:read, "${SET}"]`},
			check: func(t *testing.T, c *Config) { wantEqual(t, c.Routes[0].Scopes[1], "value") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := baseYAML
			if tt.edit[0] != "" {
				base = strings.Replace(base, tt.edit[0], tt.edit[1], 1)
			}
			c := parseInDir(t, base+tt.patch+"\n")
			tt.check(t, c)
		})
	}
}

func TestParseEnvErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "unset variable names the key and the variable",
			yaml: "cache:\n  redis:\n    password: ${REDIS_PASS}\n",
			want: []string{"cache.redis.password: environment variable REDIS_PASS is not set"},
		},
		{
			name: "in a list",
			yaml: "routes:\n  - scopes: [a, '${NOPE}']\n",
			want: []string{"routes[0].scopes[1]: environment variable NOPE is not set"},
		},
		{
			name: "malformed",
			yaml: "log:\n  level: ${lev-el}\n",
			want: []string{"log.level: a \"${...}\" reference holds a character"},
		},
		{
			name: "expanded value of the wrong type is not shown",
			yaml: "cache:\n  max_entries: ${NOT_A_NUMBER}\n",
			want: []string{"cache.max_entries: the value from the environment is not an integer"},
		},
		{
			name: "keys are never expanded",
			yaml: "${SET}: 1\n",
			want: []string{`"${SET}": unknown key`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), t.TempDir(), lookupTestEnv)
			got := messages(t, err)
			if m := missing(got, tt.want...); len(m) > 0 {
				t.Fatalf("problems %q lack %q", got, m)
			}
		})
	}
}

func wantEqual[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}
