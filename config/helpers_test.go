package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// testEnv is the environment the tests see instead of the process's.
var testEnv = map[string]string{
	"SET":            "value",
	"EMPTY":          "",
	"N":              "42",
	"NOT_A_NUMBER":   "lots",
	"TTL":            "2m",
	"INJECT":         "a\nb: c\nserver: {listen: evil}",
	"REDIS_PASSWORD": "hunter2-redis-secret",
	"STS_SECRET":     "hunter2-sts-secret",
}

func lookupTestEnv(name string) (string, bool) {
	v, ok := testEnv[name]
	return v, ok
}

// writeKey writes a new ES256 private key (PKCS#8 PEM) to dir/rel.
func writeKey(t testing.TB, dir, rel string) string {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(rel))
	oauthtest.WriteKey(t, path, "ES256")
	return path
}

// baseYAML is a small valid configuration; its key is keys/es256.pem.
const baseYAML = `
issuers:
  - issuer: "https://idp.example.com/"
    jwks_uri: "https://idp.example.com/jwks.json"
exchange:
  local:
    signing_keys:
      - {file: keys/es256.pem, alg: ES256}
routes:
  - name: orders
    path_prefix: /orders
    upstream: "http://127.0.0.1:9001"
    audience: "https://orders.example.com"
    scopes: [orders:read]
  - name: inventory
    path_prefix: /inventory
    upstream: "http://127.0.0.1:9002"
    audience: "https://inventory.example.com"
`

// parseInDir writes a key to a new folder and parses text as if it were a
// file there.
func parseInDir(t *testing.T, text string) *Config {
	t.Helper()
	dir := t.TempDir()
	writeKey(t, dir, "keys/es256.pem")
	cfg, err := Parse([]byte(text), dir, lookupTestEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// messages returns the Error() of every FieldError joined in err.
func messages(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error is not joined: %T %v", err, err)
	}
	var out []string
	for _, e := range j.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("problem %q is not a *FieldError", e)
		}
		out = append(out, fe.Error())
	}
	return out
}

// containsAll reports the wanted substrings missing from got.
func missing(got []string, want ...string) []string {
	var miss []string
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.Contains(g, w) {
				found = true
				break
			}
		}
		if !found {
			miss = append(miss, w)
		}
	}
	return miss
}

// assertProblems checks the problems of err, in order, against want (each
// a prefix), and that none repeats one of secrets.
func assertProblems(t *testing.T, err error, want []string, secrets ...string) {
	t.Helper()
	got := messages(t, err)
	if len(got) != len(want) {
		t.Fatalf("problems:\n  %s\nwant %d:\n  %s", strings.Join(got, "\n  "), len(want), strings.Join(want, "\n  "))
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n  got  %q\n  want %q...", i, got[i], want[i])
		}
		for _, s := range secrets {
			if strings.Contains(got[i], s) {
				t.Errorf("problem %d repeats a secret: %q", i, got[i])
			}
		}
	}
}
