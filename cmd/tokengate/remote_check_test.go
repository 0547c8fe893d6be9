package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckRemote: `tokengate check` accepts a remote configuration and
// loads its private_key_jwt key, so an unusable key is reported before a
// server starts, with its key path.
func TestCheckRemote(t *testing.T) {
	dir := t.TempDir()
	if _, stderr, code := runCmd(t, "keys", "generate", "--alg", "ES256", "--out", filepath.Join(dir, "keys", "client.pem")); code != 0 {
		t.Fatal(stderr)
	}
	writeFile(t, filepath.Join(dir, "keys", "bad.pem"), []byte("not a pem"))
	cfg := func(remote string) string {
		return `issuers:
  - issuer: "https://idp.example.com/"
    jwks_uri: "https://idp.example.com/jwks.json"
exchange:
  mode: remote
  remote:
    token_endpoint: "https://sts.example.com/oauth2/token"
    client_id: tokengate
` + remote + `routes:
  - {name: orders, path_prefix: /orders, upstream: "http://127.0.0.1:9001", audience: "https://orders.example.com"}
`
	}
	tests := []struct {
		name   string
		remote string
		code   int
		want   string
	}{
		{"client secret", "    client_secret: s3cr3t\n", 0, "OK (1 issuers, 1 routes, exchange mode remote)"},
		{"private_key_jwt", "    auth_method: private_key_jwt\n    private_key: {file: keys/client.pem, alg: ES256}\n", 0, "exchange mode remote"},
		{"unusable key", "    auth_method: private_key_jwt\n    private_key: {file: keys/bad.pem, alg: ES256}\n", 1, "exchange.remote.private_key: "},
		{"key of another type", "    auth_method: private_key_jwt\n    private_key: {file: keys/client.pem, alg: RS256}\n", 1, "alg RS256 needs an RSA key"},
		{"no credentials", "", 1, "exchange.remote.client_secret: is empty"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "c"+string(rune('a'+i))+".yaml")
			writeFile(t, path, []byte(cfg(tt.remote)))
			stdout, stderr, code := runCmd(t, "check", "--config", path)
			if code != tt.code || !strings.Contains(stdout+stderr, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout, stderr, tt.code, tt.want)
			}
			if strings.Contains(stdout+stderr, "s3cr3t") {
				t.Error("check printed the client secret")
			}
		})
	}
}
