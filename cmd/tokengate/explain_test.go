package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/explain/*.golden from the current output")

// explainNow is the clock of the golden explanations.
var explainNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// explainConfig: an Auth0-style tenant (umbrella API, permissions), four
// routes with every rule, two of them sharing an audience.
const explainConfig = `server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
issuers:
  - issuer: %[1]q
    jwks_uri: %[2]q
    algorithms: [ES256]
    umbrella_audience: "https://api.example.com"
    permissions_as_scopes: true
exchange:
  token_ttl: 5m
  local:
    issuer: "https://gw.example.com"
    signing_keys:
      - file: keys/es256.pem
        alg: ES256
    copy_claims: [sub, client_id, azp, acr, auth_time, gty]
routes:
  - name: orders
    path_prefix: /orders
    upstream: "http://127.0.0.1:9001"
    audience: "https://orders.example.com"
    scopes: [orders:read, orders:write]
    required_scopes: [orders:read]
  - name: payments
    host: api.example.com
    path_prefix: /payments
    upstream: "http://127.0.0.1:9002"
    audience: "https://payments.example.com"
    scope_prefix: "https://payments.example.com/"
    strip_scope_prefix: true
    required_scopes: ["https://payments.example.com/read"]
    allowed_clients: [spa, m2m-client]
    acr_values: [mfa]
    max_age: 5m
  - name: reports
    path_prefix: /reports
    upstream: "http://127.0.0.1:9003"
    audience: "https://reports.example.com"
    scopes: [reports:read, reports:export]
  - name: reports-admin
    path_prefix: /reports/admin
    upstream: "http://127.0.0.1:9003"
    audience: "https://reports.example.com"
    scopes: [reports:read, reports:admin]
    allowed_clients: [admin-console]
`

// explainSetup writes the configuration for idp and loads it.
func explainSetup(t *testing.T, idp *e2eIdP) (string, func() time.Time) {
	t.Helper()
	dir := t.TempDir()
	writeES256Key(t, filepath.Join(dir, "keys", "es256.pem"))
	path := filepath.Join(dir, "tokengate.yaml")
	text := fmt.Sprintf(explainConfig, idp.URL(), idp.URL()+"/jwks.json")
	writeFile(t, path, []byte(text))
	return path, func() time.Time { return explainNow }
}

// TestExplainGolden: the explanation of each kind of token, byte for byte.
// Run `go test ./cmd/tokengate -run TestExplainGolden -update` after an
// intended change and review the diff.
func TestExplainGolden(t *testing.T) {
	idp := newE2EIdP(t)
	stranger := newE2EIdP(t) // signs with a key the gateway does not know, under the same kid ("idp-key-1", every IdP's first)
	path, now := explainSetup(t, idp)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) int64 { return explainNow.Add(d).Unix() }
	user := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{
			"iss": idp.URL(), "sub": "auth0|user-1", "azp": "spa", "aud": []string{"https://api.example.com", "https://tenant.auth0.com/userinfo"},
			"scope": "openid orders:read orders:write https://payments.example.com/read https://payments.example.com/refund reports:read",
			"acr":   "mfa", "auth_time": at(-time.Minute), "iat": at(-time.Minute), "exp": at(time.Hour),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	tests := []struct {
		name     string
		signer   *e2eIdP
		claims   map[string]any
		noVerify bool
		down     bool
	}{
		{name: "user_mfa", claims: user(nil)},
		{name: "user_password_only", claims: user(func(c map[string]any) { c["acr"] = "pwd"; c["auth_time"] = at(-2 * time.Hour) })},
		{name: "user_missing_scope", claims: user(func(c map[string]any) { c["scope"] = "openid orders:write" })},
		{name: "m2m", claims: map[string]any{
			"iss": idp.URL(), "sub": "m2m-client@clients", "azp": "m2m-client", "gty": "client-credentials",
			"aud": "https://api.example.com", "permissions": []string{"orders:read", "https://payments.example.com/read"},
			"iat": at(-time.Minute), "exp": at(24 * time.Hour),
		}},
		{name: "multi_audience", claims: user(func(c map[string]any) {
			c["aud"] = []string{"https://orders.example.com", "https://reports.example.com"}
		})},
		{name: "dpop_bound", claims: user(func(c map[string]any) {
			c["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
		})},
		{name: "short_lived", claims: user(func(c map[string]any) { c["exp"] = at(2 * time.Minute) })},
		{name: "expired", claims: user(func(c map[string]any) { c["exp"] = at(-time.Hour) })},
		{name: "forged", signer: stranger, claims: user(nil)},
		{name: "forged_no_verify", signer: stranger, claims: user(nil), noVerify: true},
		{name: "issuer_down_no_verify", claims: user(nil), noVerify: true, down: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signer := idp
			if tc.signer != nil {
				signer = tc.signer
			}
			raw := signer.mint(t, tc.claims)
			idp.SetDown(tc.down)
			defer idp.SetDown(false)
			var out bytes.Buffer
			err := explain(context.Background(), explainOptions{
				cfg: cfg, raw: raw, noVerify: tc.noVerify, now: now,
				httpClient: &http.Client{Timeout: 5 * time.Second}, out: &out,
			})
			if err != nil {
				t.Fatalf("explain: %v", err)
			}
			got := strings.ReplaceAll(out.String(), idp.URL(), "https://idp.test")
			assertNoToken(t, got, raw)
			golden := filepath.Join("testdata", "explain", tc.name+".golden")
			if *updateGolden {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/tokengate -run TestExplainGolden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("explanation differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// assertNoToken fails when the output holds the token or any long part of it.
func assertNoToken(t *testing.T, out, raw string) {
	t.Helper()
	for _, part := range append([]string{raw}, strings.Split(raw, ".")...) {
		if len(part) >= 16 && strings.Contains(out, part) {
			t.Fatalf("the output holds the token (or a part of it)")
		}
	}
}

// TestExplainIssuerDown: without --no-verify, an unreachable JWKS is an
// error that names the way out.
func TestExplainIssuerDown(t *testing.T) {
	idp := newE2EIdP(t)
	idp.SetDown(true)
	path, now := explainSetup(t, idp)
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	raw := idp.mint(t, map[string]any{"sub": "u", "aud": "https://orders.example.com", "iat": explainNow.Unix(), "exp": explainNow.Add(time.Hour).Unix()})
	var out bytes.Buffer
	err = explain(context.Background(), explainOptions{cfg: cfg, raw: raw, now: now, httpClient: &http.Client{Timeout: 5 * time.Second}, out: &out})
	if !errors.Is(err, errKeysForExplain) || !strings.Contains(err.Error(), "--no-verify") {
		t.Fatalf("err = %v, want errKeysForExplain naming --no-verify", err)
	}
	assertNoToken(t, err.Error()+out.String(), raw)
}

// TestCheckExplainCommand: the command line: a token file, stdin, a
// "Bearer " prefix, --no-verify, and the usage errors.
func TestCheckExplainCommand(t *testing.T) {
	idp := newE2EIdP(t)
	path, _ := explainSetup(t, idp)
	raw := idp.mint(t, map[string]any{"sub": "u", "azp": "spa", "aud": "https://orders.example.com", "scope": "orders:read"})
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token.txt")
	writeFile(t, tokenFile, []byte("Bearer "+raw+"\n"))
	empty := filepath.Join(dir, "empty.txt")
	writeFile(t, empty, []byte("  \n"))
	two := filepath.Join(dir, "two.txt")
	writeFile(t, two, []byte(raw+" "+raw))
	tests := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout []string // substrings
		stderr string
	}{
		{name: "file", args: []string{"--config", path, "--explain", tokenFile}, code: 0,
			stdout: []string{"signature verified", "Routes: 1 of 4 reachable", "ALLOWED orders", `scope "orders:read"`, "REFUSED payments"}},
		{name: "stdin", args: []string{"--config", path, "--explain", "-"}, stdin: raw + "\n", code: 0, stdout: []string{"ALLOWED orders"}},
		{name: "no-verify", args: []string{"--config", path, "--explain", tokenFile, "--no-verify"}, code: 0,
			stdout: []string{"WARNING: --no-verify", "signature NOT checked", "ALLOWED orders"}},
		{name: "no-verify alone", args: []string{"--config", path, "--no-verify"}, code: 2, stderr: "only applies with --explain"},
		{name: "missing file", args: []string{"--config", path, "--explain", filepath.Join(dir, "nope")}, code: 1, stderr: "token file"},
		{name: "empty file", args: []string{"--config", path, "--explain", empty}, code: 1, stderr: "is empty"},
		{name: "two tokens", args: []string{"--config", path, "--explain", two}, code: 1, stderr: "more than one word"},
		{name: "plain check unchanged", args: []string{"--config", path}, code: 0, stdout: []string{": OK (1 issuers, 4 routes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runCheck(context.Background(), tc.args, strings.NewReader(tc.stdin), &out, &errOut)
			code := 0
			var exit *exitError
			if errors.As(err, &exit) {
				code = exit.code
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errOut.String())
			}
			for _, want := range tc.stdout {
				if !strings.Contains(out.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, out.String())
				}
			}
			if !strings.Contains(errOut.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tc.stderr)
			}
			assertNoToken(t, out.String()+errOut.String(), raw)
		})
	}
}
