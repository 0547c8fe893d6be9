package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange/keys"
)

// The demo's two APIs.
const (
	demoOrdersAud    = "https://orders.example.com"
	demoInventoryAud = "https://inventory.example.com"
)

// runDemo implements `tokengate demo`: a development issuer, two echo
// backends that verify what they receive with a standard JWT library, and
// the gateway, all on loopback in this one process. The gateway runs the very
// path `serve` runs: a generated key and a YAML file in a temporary folder.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listenAddr := fs.String("listen", "127.0.0.1:8080", "edge address (a free port is used if this one is taken)")
	adminAddr := fs.String("admin-listen", "127.0.0.1:9090", "admin address (a free port is used if this one is taken)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "tokengate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	idp, err := newDemoIssuer()
	if err != nil {
		return err
	}
	idpSrv, err := serveLoopback(idp)
	if err != nil {
		return err
	}
	defer idpSrv.Close()
	idp.url = idpSrv.URL

	edgeLn, err := listenOrFree(*listenAddr)
	if err != nil {
		return err
	}
	adminLn, err := listenOrFree(*adminAddr)
	if err != nil {
		edgeLn.Close()
		return err
	}
	gatewayIssuer := "http://" + adminLn.Addr().String()

	// Backends discover the gateway's keys from its issuer URL, exactly as a
	// production backend would from https://tokengate-admin.../.
	client := &http.Client{Timeout: 5 * time.Second}
	orders, err := serveLoopback(newDemoBackend("orders", demoOrdersAud, gatewayIssuer, client))
	if err != nil {
		return err
	}
	defer orders.Close()
	inventory, err := serveLoopback(newDemoBackend("inventory", demoInventoryAud, gatewayIssuer, client))
	if err != nil {
		return err
	}
	defer inventory.Close()

	path, err := writeDemoConfig(dir, demoConfigValues{
		Listen: edgeLn.Addr().String(), AdminListen: adminLn.Addr().String(),
		Issuer: idp.url, GatewayIssuer: gatewayIssuer,
		OrdersURL: orders.URL, InventoryURL: inventory.URL,
	})
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		printProblems(stderr, path, err)
		return fmt.Errorf("demo configuration is invalid (a bug: please report it)")
	}
	logger := newLogger(config.Log{Level: "warn", Format: "text"}, stderr)
	srv, err := startServer(ctx, serverOptions{ConfigPath: path, Config: cfg, Logger: logger, EdgeListener: edgeLn, AdminListener: adminLn})
	if err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())

	token, err := idp.mint(demoUmbrellaClaims(idp.url), time.Hour)
	if err != nil {
		return err
	}
	printDemo(stdout, srv.EdgeURL(), srv.AdminURL(), path, token)

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nstopping the demo")
		return nil
	case err := <-srv.Done():
		return err
	}
}

func printDemo(w io.Writer, edge, admin, path, token string) {
	fmt.Fprintf(w, `tokengate demo: one umbrella token, two APIs, each receiving its own single-audience token.

  gateway edge   %[1]s
  gateway admin  %[2]s  (JWKS, discovery, /metrics, /readyz)
  configuration  %[3]s

The umbrella token (aud = both APIs, scope for both) from the demo issuer:

export TOKEN=%[4]s

Each backend verifies the token it receives against the gateway's discovery document
and echoes the claims it verified: its own audience only, its own scopes only.

curl -s -H "Authorization: Bearer $TOKEN" %[1]s/orders/42
curl -s -H "Authorization: Bearer $TOKEN" %[1]s/inventory/widgets

The same exchange without a request to an API, for a service that calls it directly
(RFC 8693 token endpoint; the answer is a token for orders only):

curl -s %[1]s/oauth2/token -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \
  -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \
  -d audience=https://orders.example.com -d subject_token=$TOKEN

And what the gateway refuses:

curl -si %[1]s/orders/42                                  # 401: no token
curl -si -H "Authorization: Bearer not.a.jwt" %[1]s/orders/42  # 401: invalid_token
curl -s %[2]s/metrics | grep ^tokengate_

Ready. Press Ctrl-C to stop.
`, edge, admin, path, token)
}

// listenOrFree binds addr, or a free loopback port when addr is taken, so the
// demo runs even where something else holds 8080.
func listenOrFree(addr string) (net.Listener, error) {
	if ln, err := net.Listen("tcp", addr); err == nil {
		return ln, nil
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// loopbackServer is an http.Server on a free loopback port.
type loopbackServer struct {
	URL string
	srv *http.Server
}

func serveLoopback(h http.Handler) (*loopbackServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return &loopbackServer{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

func (s *loopbackServer) Close() { s.srv.Close() }

type demoConfigValues struct {
	Listen, AdminListen, Issuer, GatewayIssuer, OrdersURL, InventoryURL string
}

// writeDemoConfig writes a signing key and the configuration into dir.
func writeDemoConfig(dir string, v demoConfigValues) (string, error) {
	pemBytes, err := keys.GenerateKeyPEM("ES256", rand.Reader)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "es256.pem"), pemBytes, 0o600); err != nil {
		return "", err
	}
	yaml := fmt.Sprintf(`# Written by "tokengate demo"; the same file format "tokengate serve" reads.
server:
  listen: %q
  admin_listen: %q
log:
  format: text
issuers:
  - issuer: %q
    jwks_uri: %q
    algorithms: [ES256]
exchange:
  mode: local
  token_ttl: 5m
  local:
    issuer: %q
    signing_keys:
      - file: es256.pem
        alg: ES256
cache:
  max_entries: 10000
routes:
  - name: orders
    path_prefix: /orders
    upstream: %q
    audience: %q
    scopes: [orders:read, orders:write]
  - name: inventory
    path_prefix: /inventory
    upstream: %q
    audience: %q
    scopes: [inventory:read]
`, v.Listen, v.AdminListen, v.Issuer, v.Issuer+"/jwks.json", v.GatewayIssuer,
		v.OrdersURL, demoOrdersAud, v.InventoryURL, demoInventoryAud)
	path := filepath.Join(dir, "tokengate.yaml")
	return path, os.WriteFile(path, []byte(yaml), 0o600)
}

func demoUmbrellaClaims(issuer string) map[string]any {
	return map[string]any{
		"iss":       issuer,
		"sub":       "demo-user",
		"client_id": "demo-cli",
		"aud":       []string{demoOrdersAud, demoInventoryAud},
		"scope":     "openid profile orders:read orders:write inventory:read",
		"acr":       "urn:example:mfa",
		"amr":       []string{"pwd", "otp"},
	}
}

// demoIssuer is a development identity provider: one ES256 key, a JWKS and
// an OIDC discovery document.
type demoIssuer struct {
	url    string
	key    *ecdsa.PrivateKey
	kid    string
	signer jose.Signer
}

func newDemoIssuer() (*demoIssuer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	const kid = "demo-idp-1"
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &demoIssuer{key: key, kid: kid, signer: signer}, nil
}

func (d *demoIssuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/jwks.json":
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &d.key.PublicKey, KeyID: d.kid, Algorithm: "ES256", Use: "sig"},
		}})
	case "/.well-known/openid-configuration":
		json.NewEncoder(w).Encode(map[string]any{"issuer": d.url, "jwks_uri": d.url + "/jwks.json"})
	default:
		http.NotFound(w, r)
	}
}

func (d *demoIssuer) mint(claims map[string]any, ttl time.Duration) (string, error) {
	now := time.Now()
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(ttl).Unix()
	return jwt.Signed(d.signer).Claims(claims).Serialize()
}

// demoBackend is an API that trusts only tokens the gateway minted for its own
// audience. It finds the gateway's keys through OIDC discovery on the gateway
// issuer and verifies with go-jose: no tokengate code on this side.
type demoBackend struct {
	name, audience, issuer string
	client                 *http.Client

	mu   sync.Mutex
	jwks *jose.JSONWebKeySet
}

func newDemoBackend(name, audience, issuer string, client *http.Client) *demoBackend {
	return &demoBackend{name: name, audience: audience, issuer: issuer, client: client}
}

func (b *demoBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	claims, header, err := b.verify(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		enc.Encode(map[string]any{"backend": b.name, "verified": false, "error": err.Error()})
		return
	}
	enc.Encode(map[string]any{
		"backend":     b.name,
		"verified":    true,
		"verified_by": "go-jose, keys from " + b.issuer + "/.well-known/openid-configuration",
		"path":        r.URL.Path,
		"request_id":  r.Header.Get("X-Request-Id"),
		"header":      header,
		"claims":      claims,
	})
}

// verify checks the bearer token like any backend would and returns its
// claims and its protected header (typ at+jwt, the gateway's kid).
func (b *demoBackend) verify(ctx context.Context, authz string) (map[string]any, map[string]any, error) {
	raw, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok {
		return nil, nil, errors.New("no bearer token")
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256, jose.EdDSA})
	if err != nil {
		return nil, nil, fmt.Errorf("parse: %w", err)
	}
	keys, err := b.keys(ctx)
	if err != nil {
		return nil, nil, err
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(keys, &std, &all); err != nil {
		return nil, nil, fmt.Errorf("signature: %w", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: b.issuer, AnyAudience: jwt.Audience{b.audience}, Time: time.Now()}, 5*time.Second); err != nil {
		return nil, nil, fmt.Errorf("claims: %w", err)
	}
	h := tok.Headers[0]
	header := map[string]any{"alg": h.Algorithm, "kid": h.KeyID}
	for k, v := range h.ExtraHeaders {
		header[string(k)] = v
	}
	return all, header, nil
}

// keys fetches the gateway's JWKS through its discovery document once.
func (b *demoBackend) keys(ctx context.Context) (*jose.JSONWebKeySet, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.jwks != nil {
		return b.jwks, nil
	}
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, b.client, b.issuer+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, err
	}
	if disc.Issuer != b.issuer {
		return nil, fmt.Errorf("discovery issuer %q, want %q", disc.Issuer, b.issuer)
	}
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, b.client, disc.JWKSURI, &set); err != nil {
		return nil, err
	}
	b.jwks = &set
	return b.jwks, nil
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}
