package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	var exit *exitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &exit):
		code = exit.code
	default:
		code = 1
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func TestKeysGenerate(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"ES256", "RS256", "PS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			out := filepath.Join(dir, alg+".pem")
			stdout, stderr, code := runCmd(t, "keys", "generate", "--alg", alg, "--out", out)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, "kid ") {
				t.Errorf("stdout %q does not name the kid", stdout)
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
			}
			// Never overwrite a key by accident.
			if _, stderr, code := runCmd(t, "keys", "generate", "--alg", alg, "--out", out); code == 0 || !strings.Contains(stderr, "--force") {
				t.Errorf("second generate: exit %d, %q; want a refusal naming --force", code, stderr)
			}
		})
	}
	if _, _, code := runCmd(t, "keys", "generate", "--alg", "HS256", "--out", filepath.Join(dir, "x.pem")); code == 0 {
		t.Error("HS256 key generation succeeded; only asymmetric algorithms are supported")
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := runCmd(t, "keys", "generate", "--alg", "ES256", "--out", filepath.Join(dir, "keys", "es256.pem")); code != 0 {
		t.Fatal(stderr)
	}
	good := `issuers:
  - issuer: "https://idp.example.com/"
    jwks_uri: "https://idp.example.com/jwks.json"
exchange:
  local:
    signing_keys: [{file: keys/es256.pem, alg: ES256}]
routes:
  - {name: orders, path_prefix: /orders, upstream: "http://127.0.0.1:9001", audience: "https://orders.example.com"}
`
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, []byte(text))
		return p
	}
	t.Run("valid", func(t *testing.T) {
		stdout, stderr, code := runCmd(t, "check", "--config", write("good.yaml", good))
		if code != 0 || !strings.Contains(stdout, "OK") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("every problem with its key path", func(t *testing.T) {
		bad := strings.Replace(good, `upstream: "http://127.0.0.1:9001"`, `upstream: "ftp://x"`, 1)
		bad = strings.Replace(bad, "jwks_uri:", "jwks_url:", 1)
		_, stderr, code := runCmd(t, "check", "--config", write("bad.yaml", bad))
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		for _, want := range []string{"routes[0].upstream", "issuers[0].jwks_url"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("output lacks %q:\n%s", want, stderr)
			}
		}
	})
	t.Run("unusable key file", func(t *testing.T) {
		write("keys/bad.pem", "not a pem")
		_, stderr, code := runCmd(t, "check", "--config", write("badkey.yaml", strings.Replace(good, "keys/es256.pem", "keys/bad.pem", 1)))
		if code != 1 || !strings.Contains(stderr, "signing_keys") {
			t.Errorf("exit %d, stderr %q; want 1 naming signing_keys", code, stderr)
		}
	})
	t.Run("serve refuses an invalid file", func(t *testing.T) {
		_, stderr, code := runCmd(t, "serve", "--config", write("bad2.yaml", "routes: []\n"))
		if code != 1 || !strings.Contains(stderr, "routes") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestVersionAndUsage(t *testing.T) {
	stdout, _, code := runCmd(t, "version")
	if code != 0 || !strings.Contains(stdout, runtime.Version()) {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
	if _, stderr, code := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, stderr)
	}
	if _, _, code := runCmd(t); code != 2 {
		t.Errorf("no command: exit %d, want 2", code)
	}
}
