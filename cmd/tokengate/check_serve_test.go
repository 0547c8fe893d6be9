package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/oauthtest"
	build "github.com/tokengate/tokengate/internal/server"
)

// checkServeBase is a valid local-mode configuration; each case below adds
// or changes one key that names a file, and breaks that file.
const checkServeBase = `server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
issuers:
  - issuer: "https://idp.example.com/"
    jwks_uri: "https://idp.invalid/jwks.json"
exchange:
  local:
    issuer: "https://gw.example.com"
    signing_keys:
      - {file: keys/es256.pem, alg: ES256}
routes:
  - {name: orders, path_prefix: /orders, upstream: "http://127.0.0.1:9001", audience: "https://orders.example.com"}
`

// TestCheckRefusesWhatServeRefuses: for every configuration key that loads
// a file, a broken file makes `check` exit 1 naming the key path, and the
// build serve runs (online, through internal/server) fails with the same
// message, as does `serve` itself. check and serve share one build path, so
// they can never disagree again. (Txn-Tokens are signed with
// exchange.local.signing_keys or by the STS: they load no file of their own.)
func TestCheckRefusesWhatServeRefuses(t *testing.T) {
	const garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
	const notPEM = "not a pem file\n"
	remote := func(text string) string {
		return strings.Replace(text, `  local:
    issuer: "https://gw.example.com"
    signing_keys:
      - {file: keys/es256.pem, alg: ES256}
`, `  mode: remote
  remote:
    token_endpoint: "https://sts.example.com/token"
    client_id: tokengate
    auth_method: private_key_jwt
    private_key: {file: keys/client.pem, alg: ES256}
`, 1)
	}
	tests := []struct {
		name  string
		edit  func(string) string
		files map[string]string // relative path → content, written after the good key
		want  []string          // in check's problem line
	}{
		{name: "exchange.local.signing_keys[].file",
			files: map[string]string{"keys/es256.pem": garbage},
			want:  []string{"exchange.local.signing_keys"}},
		{name: "exchange.local.signing_keys[].file not PEM",
			files: map[string]string{"keys/es256.pem": notPEM},
			want:  []string{"exchange.local.signing_keys"}},
		{name: "exchange.remote.private_key",
			edit:  remote,
			files: map[string]string{"keys/client.pem": garbage},
			want:  []string{"exchange.remote.private_key"}},
		{name: "issuers[].introspection.private_key",
			edit: func(s string) string {
				return strings.Replace(s, `    jwks_uri: "https://idp.invalid/jwks.json"
`, `    jwks_uri: "https://idp.invalid/jwks.json"
    introspection_endpoint: "https://idp.invalid/introspect"
    introspection:
      client_id: tokengate
      auth_method: private_key_jwt
      private_key: {file: keys/client.pem, alg: ES256}
`, 1)
			},
			files: map[string]string{"keys/client.pem": garbage},
			want:  []string{"issuers[0]", "introspection.private_key"}},
		{name: "server.tls.cert_file",
			edit: func(s string) string {
				return strings.Replace(s, "server:\n", "server:\n  tls: {cert_file: tls/cert.pem, key_file: tls/key.pem}\n", 1)
			},
			files: map[string]string{"tls/cert.pem": notPEM, "tls/key.pem": garbage},
			want:  []string{"server.tls.cert_file"}},
		{name: "server.tls.key_file",
			edit: func(s string) string {
				return strings.Replace(s, "server:\n", "server:\n  tls: {cert_file: tls/cert.pem, key_file: tls/key.pem}\n", 1)
			},
			files: map[string]string{"tls/key.pem": garbage},
			want:  []string{"server.tls.key_file"}},
		{name: "cache.redis.tls.ca_file",
			edit: func(s string) string {
				return s + "cache:\n  redis:\n    addrs: [\"127.0.0.1:1\"]\n    encryption_key: \"" + testCacheKey + "\"\n" +
					"    tls: {ca_file: tls/ca.pem}\n"
			},
			files: map[string]string{"tls/ca.pem": notPEM},
			want:  []string{"cache.redis", "ca_file"}},
		{name: "cache.redis.tls.cert_file and key_file",
			edit: func(s string) string {
				return s + "cache:\n  redis:\n    addrs: [\"127.0.0.1:1\"]\n    encryption_key: \"" + testCacheKey + "\"\n" +
					"    tls: {cert_file: tls/cert.pem, key_file: tls/key.pem}\n"
			},
			files: map[string]string{"tls/cert.pem": notPEM, "tls/key.pem": garbage},
			want:  []string{"cache.redis", "client certificate"}},
		{name: "routes[].tls.ca_file",
			edit:  upstreamTLSEdit("{ca_file: tls/ca.pem}"),
			files: map[string]string{"tls/ca.pem": notPEM},
			want:  []string{"routes[0].tls.ca_file"}},
		{name: "routes[].tls.cert_file",
			edit:  upstreamTLSEdit("{cert_file: tls/cert.pem, key_file: tls/key.pem}"),
			files: map[string]string{"tls/cert.pem": notPEM},
			want:  []string{"routes[0].tls.cert_file"}},
		{name: "routes[].tls.key_file",
			edit:  upstreamTLSEdit("{cert_file: tls/cert.pem, key_file: tls/key.pem}"),
			files: map[string]string{"tls/key.pem": garbage},
			want:  []string{"routes[0].tls.key_file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeES256Key(t, filepath.Join(dir, "keys", "es256.pem"))
			writeES256Key(t, filepath.Join(dir, "keys", "client.pem"))
			certPEM, keyPEM := oauthtest.SelfSigned(t, "127.0.0.1", 1)
			writeFile(t, filepath.Join(dir, "tls", "cert.pem"), certPEM)
			writeFile(t, filepath.Join(dir, "tls", "key.pem"), keyPEM)
			writeFile(t, filepath.Join(dir, "tls", "ca.pem"), certPEM)
			text := checkServeBase
			if tc.edit != nil {
				text = tc.edit(text)
			}
			path := filepath.Join(dir, "tokengate.yaml")
			writeFile(t, path, []byte(text))
			// The configuration is valid with good files: only the broken
			// file below makes it fail.
			if _, stderr, code := runCmd(t, "check", "--config", path); code != 0 {
				t.Fatalf("with good files: exit %d: %s", code, stderr)
			}
			for name, content := range tc.files {
				writeFile(t, filepath.Join(dir, name), []byte(content))
			}

			_, checkErr, code := runCmd(t, "check", "--config", path)
			if code != 1 {
				t.Fatalf("check: exit %d, want 1: %s", code, checkErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(checkErr, w) {
					t.Errorf("check does not name %q:\n%s", w, checkErr)
				}
			}

			// The build serve runs, online, from the same loaded file.
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatalf("config.Load: %v (the file itself is valid; only the build may fail)", err)
			}
			p, err := build.NewProcess(slog.New(slog.DiscardHandler), prometheus.NewRegistry(), build.ProcessOptions{})
			if err != nil {
				t.Fatal(err)
			}
			gen, err := build.Build(context.Background(), p, cfg, nil, build.Options{})
			if err == nil {
				gen.Close()
				t.Fatal("serve's build accepted what check refused")
			}
			if !strings.Contains(checkErr, err.Error()) {
				t.Errorf("serve's build fails differently:\n  build: %v\n  check: %s", err, checkErr)
			}

			// serve itself: exit 1 and the same problems, no listener.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var out, serveErr strings.Builder
			err = run(ctx, []string{"serve", "--config", path, "--watch=false"}, &out, &serveErr)
			var exit *exitError
			if !errors.As(err, &exit) || exit.code != 1 {
				t.Fatalf("serve: %v, want exit 1", err)
			}
			if serveErr.String() != checkErr {
				t.Errorf("serve and check report differently:\n  serve: %s\n  check: %s", serveErr.String(), checkErr)
			}
		})
	}
}

// upstreamTLSEdit gives the orders route an https:// upstream with tls.
func upstreamTLSEdit(tlsYAML string) func(string) string {
	return func(s string) string {
		return strings.Replace(s, `upstream: "http://127.0.0.1:9001", audience: "https://orders.example.com"}`,
			`upstream: "https://127.0.0.1:9001", audience: "https://orders.example.com", tls: `+tlsYAML+`}`, 1)
	}
}

// testCacheKey is a cache.redis.encryption_key: base64 of 32 bytes.
var testCacheKey = base64.StdEncoding.EncodeToString(make([]byte, 32))

// TestServeTLSCertificateFromTheBuild: the edge serves TLS (and HTTP/2 by
// ALPN) with the certificate the build loaded from server.tls.
func TestServeTLSCertificateFromTheBuild(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := oauthtest.SelfSigned(t, "127.0.0.1", 1)
	writeFile(t, filepath.Join(dir, "cert.pem"), certPEM)
	writeFile(t, filepath.Join(dir, "key.pem"), keyPEM)
	idp := newE2EIdP(t)
	g := startE2EWith(t, idp, newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"), e2eOptions{
		edit: func(text, _ string) string {
			return strings.Replace(text, "server:\n", fmt.Sprintf("server:\n  tls: {cert_file: %q, key_file: %q}\n",
				filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")), 1)
		},
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}, ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get("https://" + g.srv.edgeAddr.String() + "/orders")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.TLS == nil || resp.ProtoMajor != 2 {
		t.Fatalf("status %d, TLS %t, proto %s: want 401 over TLS and HTTP/2", resp.StatusCode, resp.TLS != nil, resp.Proto)
	}
}
