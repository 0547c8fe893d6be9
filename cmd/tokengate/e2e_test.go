package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/internal/logtest"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// e2eIdP is oauthtest's IdP (JWKS and metadata over real HTTP, keys that
// rotate, a JWKS that can be taken down) under the names these tests use.
type e2eIdP struct{ *oauthtest.IdP }

func newE2EIdP(t testing.TB) *e2eIdP { return &e2eIdP{oauthtest.NewIdP(t)} }

// addKey puts a new ES256 key first (it signs from now on); older keys stay published.
func (i *e2eIdP) addKey(t testing.TB, kid string) { i.AddKey(t, "ES256", kid) }

// mint signs claims with the IdP's current key; iat/exp default to now/+1h.
func (i *e2eIdP) mint(t testing.TB, claims map[string]any) string { return i.Mint(t, claims) }

// e2eBackend records every request it receives.
type e2eBackend struct {
	name string
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func newE2EBackend(t testing.TB, name string) *e2eBackend {
	b := &e2eBackend{name: name}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.reqs = append(b.reqs, r.Clone(context.Background()))
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"backend":%q}`, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *e2eBackend) received() []*http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*http.Request(nil), b.reqs...)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer = logtest.Buffer

type e2eGateway struct {
	srv     *server
	dir     string
	path    string
	logs    *syncBuffer
	issuer  string
	cfgText string
}

const (
	audOrders    = "https://orders.example.com"
	audInventory = "https://inventory.example.com"
)

// e2eConfig is the configuration template; %[n] verbs are filled by startE2E.
const e2eConfig = `server:
  listen: "127.0.0.1:0"
  admin_listen: %[1]q
  shutdown_grace: 10s
log:
  level: debug
issuers:
  - issuer: %[2]q
    jwks_uri: %[3]q
    algorithms: [ES256]
    leeway: 5s
    min_refresh_interval: 1s
exchange:
  token_ttl: 5m
  local:
    issuer: %[4]q
    signing_keys:
      - file: keys/es256.pem
        alg: ES256
cache:
  refresh_before: 30s
routes:
  - name: orders
    path_prefix: /orders
    upstream: %[5]q
    audience: %[7]q
    scopes: [orders:read, orders:write]
    required_scopes: [orders:read]
    timeout: 5s
  - name: inventory
    path_prefix: /inventory
    strip_prefix: true
    upstream: %[6]q
    audience: %[8]q
    scopes: [inventory:read]
    timeout: 5s
`

func startE2E(t testing.TB, idp *e2eIdP, orders, inventory *e2eBackend) *e2eGateway {
	t.Helper()
	return startE2EWith(t, idp, orders, inventory, e2eOptions{})
}

// e2eOptions vary startE2E's configuration: replicas share a signing key
// and an issuer (both shape the exchanged tokens, so the cache keys).
type e2eOptions struct {
	keyPEM     []byte // the signing key; nil makes a new one
	issuer     string // exchange.local.issuer; "" is the admin listener's URL
	adminToken string // server.admin_token
	cacheYAML  string // lines added under cache: (indented two spaces)
	// edit, when set, changes the configuration text last; it also learns
	// the edge's address (for server.public_url).
	edit func(text, edgeAddr string) string
	// write, when set, puts the text on disk and returns the path to load
	// (e.g. behind a Kubernetes-style symlink); opts changes the server options.
	write func(t testing.TB, dir, text string) string
	opts  func(*serverOptions)
}

func startE2EWith(t testing.TB, idp *e2eIdP, orders, inventory *e2eBackend, o e2eOptions) *e2eGateway {
	t.Helper()
	dir := t.TempDir()
	if o.keyPEM == nil {
		writeES256Key(t, filepath.Join(dir, "keys", "es256.pem"))
	} else {
		writeFile(t, filepath.Join(dir, "keys", "es256.pem"), o.keyPEM)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	edgeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + adminLn.Addr().String()
	if o.issuer != "" {
		issuer = o.issuer
	}
	text := fmt.Sprintf(e2eConfig, adminLn.Addr().String(), idp.URL(), idp.URL()+"/jwks.json", issuer,
		orders.srv.URL, inventory.srv.URL, audOrders, audInventory)
	if o.adminToken != "" {
		text = strings.Replace(text, "  shutdown_grace: 10s\n", fmt.Sprintf("  shutdown_grace: 10s\n  admin_token: %q\n", o.adminToken), 1)
	}
	if o.cacheYAML != "" {
		text = strings.Replace(text, "cache:\n", "cache:\n"+o.cacheYAML, 1)
	}
	if o.edit != nil {
		text = o.edit(text, edgeLn.Addr().String())
	}
	path := filepath.Join(dir, "tokengate.yaml")
	if o.write != nil {
		path = o.write(t, dir, text)
	} else if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	opts := serverOptions{
		ConfigPath: path, Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		EdgeListener: edgeLn, AdminListener: adminLn,
	}
	if o.opts != nil {
		o.opts(&opts)
	}
	srv, err := startServer(context.Background(), opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return &e2eGateway{srv: srv, dir: dir, path: path, logs: logs, issuer: issuer, cfgText: text}
}

// get sends a GET through the edge with an optional bearer token.
func (g *e2eGateway) get(t *testing.T, path, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.srv.EdgeURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func bearerOf(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// assertNoUmbrella fails if the umbrella token appears anywhere in what the
// backends received or in the gateway's logs.
func assertNoUmbrella(t *testing.T, umbrella string, g *e2eGateway, backends ...*e2eBackend) {
	t.Helper()
	for _, b := range backends {
		for _, r := range b.received() {
			if strings.Contains(r.URL.String(), umbrella) {
				t.Errorf("%s received the umbrella token in its URL", b.name)
			}
			for name, vals := range r.Header {
				for _, v := range vals {
					if strings.Contains(v, umbrella) {
						t.Errorf("%s received the umbrella token in header %s", b.name, name)
					}
				}
			}
		}
	}
	// The signature part alone identifies the token; check for it too.
	sig := umbrella[strings.LastIndex(umbrella, ".")+1:]
	if logs := g.logs.String(); strings.Contains(logs, umbrella) || strings.Contains(logs, sig) {
		t.Errorf("the umbrella token appears in the logs")
	}
}

func TestE2EOneTokenTwoBackends(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	umbrella := idp.mint(t, map[string]any{
		"sub": "user-1", "client_id": "spa", "acr": "mfa", "amr": []string{"pwd", "otp"},
		"aud":   []string{audOrders, audInventory},
		"scope": "openid orders:read orders:write inventory:read inventory:write",
	})

	resp, body := g.get(t, "/orders/42?x=1", umbrella)
	if resp.StatusCode != 200 || !strings.Contains(body, `"orders"`) {
		t.Fatalf("orders: %d %s", resp.StatusCode, body)
	}
	resp, body = g.get(t, "/inventory/widgets", umbrella)
	if resp.StatusCode != 200 || !strings.Contains(body, `"inventory"`) {
		t.Fatalf("inventory: %d %s", resp.StatusCode, body)
	}

	ordersReqs, invReqs := orders.received(), inventory.received()
	if len(ordersReqs) != 1 || len(invReqs) != 1 {
		t.Fatalf("backends received %d and %d requests, want 1 and 1", len(ordersReqs), len(invReqs))
	}
	if got := ordersReqs[0].URL.RequestURI(); got != "/orders/42?x=1" {
		t.Errorf("orders path = %q, want /orders/42?x=1", got)
	}
	if got := invReqs[0].URL.Path; got != "/widgets" {
		t.Errorf("inventory path = %q, want /widgets (strip_prefix)", got)
	}

	// Each backend verifies its token the way a real one would: discovery on
	// the gateway issuer, then a standard library.
	cases := []struct {
		name, aud, scope string
		req              *http.Request
	}{
		{"orders", audOrders, "orders:read orders:write", ordersReqs[0]},
		{"inventory", audInventory, "inventory:read", invReqs[0]},
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := bearerOf(tc.req)
			if tok == umbrella || tok == "" {
				t.Fatalf("backend got the umbrella token or none")
			}
			claims, _, err := newDemoBackend(tc.name, tc.aud, g.issuer, client).verify(context.Background(), "Bearer "+tok)
			if err != nil {
				t.Fatalf("verification with discovery + go-jose failed: %v", err)
			}
			if claims["aud"] != tc.aud {
				t.Errorf("aud = %#v, want the single string %q", claims["aud"], tc.aud)
			}
			if claims["scope"] != tc.scope {
				t.Errorf("scope = %q, want %q", claims["scope"], tc.scope)
			}
			if claims["sub"] != "user-1" || claims["client_id"] != "spa" || claims["acr"] != "mfa" {
				t.Errorf("sub/client_id/acr not carried: %v", claims)
			}
			if act, _ := claims["act"].(map[string]any); act["sub"] != g.issuer {
				t.Errorf("act = %v, want sub %q", claims["act"], g.issuer)
			}
			parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			if typ := parsed.Headers[0].ExtraHeaders["typ"]; typ != "at+jwt" {
				t.Errorf("typ = %v, want at+jwt", typ)
			}
			other := map[string]string{audOrders: audInventory, audInventory: audOrders}[tc.aud]
			if _, _, err := newDemoBackend("other", other, g.issuer, client).verify(context.Background(), "Bearer "+tok); err == nil {
				t.Errorf("a token for %s was accepted by the %s backend", tc.aud, other)
			}
			if tc.req.Header.Get("X-Request-Id") == "" || tc.req.Header.Get("X-Forwarded-For") == "" {
				t.Errorf("X-Request-Id / X-Forwarded-For missing: %v", tc.req.Header)
			}
		})
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory)
}

func TestE2ECacheReuseAndOneSigningUnderConcurrency(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})

	const n = 100
	for _, c := range burst(http.DefaultClient, g.srv.EdgeURL()+"/orders", repeat(umbrella, n))() {
		if c != 200 {
			t.Fatalf("a concurrent request got %d", c)
		}
	}
	signed := testutil.ToFloat64(g.srv.proc.ExchangeMetrics.Exchanges.WithLabelValues(audOrders, "local", "ok"))
	if signed != 1 {
		t.Errorf("%d concurrent first requests caused %v signings, want 1", n, signed)
	}
	seen := map[string]bool{}
	for _, r := range orders.received() {
		seen[bearerOf(r)] = true
	}
	if len(seen) != 1 {
		t.Errorf("backend saw %d distinct exchanged tokens, want 1 (cache reuse)", len(seen))
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory)
}

func TestE2EExpiryBoundByUmbrella(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	umbrellaExp := time.Now().Add(2 * time.Minute).Unix() // token_ttl is 5m
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read", "exp": umbrellaExp})
	if resp, body := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var c jwt.Claims
	tok, err := jwt.ParseSigned(bearerOf(orders.received()[0]), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	if got := c.Expiry.Time().Unix(); got != umbrellaExp {
		t.Errorf("exchanged exp = %d, want the umbrella's exp %d", got, umbrellaExp)
	}
}

func TestE2EErrorsNeverReachBackends(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	otherIdP := newE2EIdP(t) // same iss would be needed to pass; its key is unknown to the gateway
	good := map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	forged := func() string {
		// Signed by another key but claiming the configured issuer; its
		// kid is "idp-key-1" too (every IdP's first key is).
		tok := otherIdP.mint(t, with(map[string]any{"iss": idp.URL()}))
		return tok
	}()

	tests := []struct {
		name, path, token string
		status            int
		wwwAuth           string // substring
	}{
		{"no route", "/nope", idp.mint(t, good), 404, ""},
		{"segment boundary", "/ordersx", idp.mint(t, good), 404, ""},
		{"no token", "/orders", "", 401, `Bearer realm="tokengate"`},
		{"garbage token", "/orders", "not-a-jwt", 401, `error="invalid_token"`},
		{"forged signature", "/orders", forged, 401, `error="invalid_token"`},
		{"expired", "/orders", idp.mint(t, with(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})), 401, `error="invalid_token"`},
		{"wrong audience", "/orders", idp.mint(t, with(map[string]any{"aud": audInventory})), 401, `error="invalid_token"`},
		{"unknown issuer", "/orders", idp.mint(t, with(map[string]any{"iss": "https://evil.example"})), 401, `error="invalid_token"`},
		{"missing required scope", "/orders", idp.mint(t, with(map[string]any{"scope": "orders:write"})), 403, `error="insufficient_scope", scope="orders:read"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := g.get(t, tc.path, tc.token)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, tc.wwwAuth) || (tc.wwwAuth == "" && got != "") {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, tc.wwwAuth)
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
				t.Errorf("body is not a JSON error: %s", body)
			}
			if tc.token != "" && strings.Contains(body, tc.token) {
				t.Errorf("the response echoes the token")
			}
		})
	}
	if n := len(orders.received()) + len(inventory.received()); n != 0 {
		t.Errorf("backends received %d requests; failures must never be forwarded", n)
	}

	t.Run("malformed header", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, g.srv.EdgeURL()+"/orders", nil)
		req.Header.Set("Authorization", "Bearer a b")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_request"`) {
			t.Errorf("got %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
}

func TestE2EKeyRotationAndIdPOutage(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	claims := map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"}
	old := idp.mint(t, claims)
	if resp, body := g.get(t, "/orders", old); resp.StatusCode != 200 {
		t.Fatalf("before rotation: %d %s", resp.StatusCode, body)
	}

	// Rotation: the IdP signs with a new kid. The gateway refetches its JWKS
	// on the unknown kid, but at most once per min_refresh_interval (1s here),
	// so the new kid is accepted within about one interval, and retries
	// inside the interval do not reach the IdP.
	idp.addKey(t, "idp-key-2")
	rotated := idp.mint(t, claims)
	before := idp.JWKSFetches()
	attempts := 0
	waitFor(t, func() bool {
		attempts++
		resp, _ := g.get(t, "/orders", rotated)
		return resp.StatusCode == 200
	})
	if fetched := idp.JWKSFetches() - before; fetched > 2 {
		t.Errorf("%d requests with the new kid caused %d JWKS fetches; want at most 2 (rate limit)", attempts, fetched)
	}

	// Outage after start: tokens signed by known keys keep working.
	idp.SetDown(true)
	fresh := idp.mint(t, map[string]any{"sub": "other", "aud": audOrders, "scope": "orders:read"})
	if resp, body := g.get(t, "/orders", fresh); resp.StatusCode != 200 {
		t.Fatalf("known key during IdP outage: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, g.srv.AdminURL()+"/readyz"); resp.StatusCode != 200 {
		t.Errorf("readyz = %d during an outage with known keys, want 200", resp.StatusCode)
	}
}

func TestE2EIdPDownFromStartIs503(t *testing.T) {
	idp := newE2EIdP(t)
	idp.SetDown(true)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	resp, body := g.get(t, "/orders", idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"}))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d (Retry-After %q) %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("an outage must not blame the token: WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
	}
	if resp, body := get(t, g.srv.AdminURL()+"/readyz"); resp.StatusCode != 503 || !strings.Contains(body, "issuer_keys") {
		t.Errorf("readyz = %d %s, want 503 naming issuer_keys", resp.StatusCode, body)
	}
	if len(orders.received()) != 0 {
		t.Errorf("forwarded during an IdP outage")
	}
	// The IdP comes back: the next request fetches keys and succeeds.
	idp.SetDown(false)
	_ = waitFor(t, func() bool {
		resp, _ := g.get(t, "/orders", idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"}))
		return resp.StatusCode == 200
	})
}

func TestE2EAdminEndpoints(t *testing.T) {
	idp := newE2EIdP(t)
	g := startE2E(t, idp, newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"))
	resp, body := get(t, g.srv.AdminURL()+"/.well-known/openid-configuration")
	var disc map[string]any
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &disc) != nil {
		t.Fatalf("discovery: %d %s", resp.StatusCode, body)
	}
	if disc["issuer"] != g.issuer || disc["jwks_uri"] != g.issuer+"/.well-known/jwks.json" {
		t.Errorf("discovery = %v", disc)
	}
	resp, body = get(t, g.srv.AdminURL()+"/.well-known/jwks.json")
	var set jose.JSONWebKeySet
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &set) != nil || len(set.Keys) != 1 || !set.Keys[0].IsPublic() {
		t.Errorf("jwks: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, `"d"`) {
		t.Errorf("JWKS leaks a private key part: %s", body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, body := get(t, g.srv.AdminURL()+p); resp.StatusCode != 200 {
			t.Errorf("%s = %d %s", p, resp.StatusCode, body)
		}
	}
	_, metrics := get(t, g.srv.AdminURL()+"/metrics")
	for _, name := range []string{"tokengate_build_info", "tokengate_config_reloads_total", "go_goroutines"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// The admin listener never proxies.
	if resp, _ := get(t, g.srv.AdminURL()+"/orders"); resp.StatusCode != 404 {
		t.Errorf("admin /orders = %d, want 404", resp.StatusCode)
	}
}

func TestE2EReload(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	const newAud = "https://orders-v2.example.com"
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": []string{audOrders, newAud}, "scope": "orders:read"})
	if resp, _ := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("before reload: %d", resp.StatusCode)
	}

	// An invalid file changes nothing and is counted.
	writeFile(t, g.path, []byte("routes: [oops"))
	if err := g.srv.Reload(context.Background()); err == nil {
		t.Fatal("reload of an invalid file succeeded")
	}
	if got := testutil.ToFloat64(g.srv.proc.reloads.WithLabelValues("error")); got != 1 {
		t.Errorf("reload errors = %v, want 1", got)
	}
	if resp, _ := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("after a failed reload the old configuration must keep serving: %d", resp.StatusCode)
	}

	// A valid change of the route's audience: no token cached under the old
	// audience may be served.
	writeFile(t, g.path, []byte(strings.Replace(g.cfgText, fmt.Sprintf("audience: %q", audOrders), fmt.Sprintf("audience: %q", newAud), 1)))
	if err := g.srv.Reload(context.Background()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if resp, body := g.get(t, "/orders", umbrella); resp.StatusCode != 200 {
		t.Fatalf("after reload: %d %s", resp.StatusCode, body)
	}
	reqs := orders.received()
	var c jwt.Claims
	tok, _ := jwt.ParseSigned(bearerOf(reqs[len(reqs)-1]), []jose.SignatureAlgorithm{jose.ES256})
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	if len(c.Audience) != 1 || c.Audience[0] != newAud {
		t.Errorf("after reload the backend got aud %v, want [%s]", c.Audience, newAud)
	}
}

func TestE2EGracefulShutdownFinishesInFlight(t *testing.T) {
	idp := newE2EIdP(t)
	release := make(chan struct{})
	arrived := make(chan struct{})
	slow := &e2eBackend{name: "orders"}
	slow.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "done")
	}))
	t.Cleanup(slow.srv.Close)
	g := startE2E(t, idp, slow, newE2EBackend(t, "inventory"))
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})

	result := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, g.srv.EdgeURL()+"/orders", nil)
		req.Header.Set("Authorization", "Bearer "+umbrella)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	<-arrived
	shutdown := make(chan error, 1)
	go func() { shutdown <- g.srv.Shutdown(context.Background()) }()
	// Readiness fails once shutdown begins.
	waitFor(t, func() bool { return g.srv.proc.Draining.Load() })
	close(release)
	if got := <-result; got != "200 done" {
		t.Errorf("in-flight request during shutdown: %s", got)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(g.srv.EdgeURL(), "http://"), time.Second); err == nil {
		t.Errorf("the edge still accepts connections after shutdown")
	}
}

// sendWith sends method url with the bearer token (none when "") and the
// extra headers, as a client would, and returns the response and its body.
func sendWith(t *testing.T, method, url, token string, extra map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// waitFor polls cond until it holds or the test's deadline nears: a condition,
// never a fixed sleep.
func waitFor(t *testing.T, cond func() bool) bool {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatal("condition not met within 20s")
		case <-tick.C:
		}
	}
	return true
}

// burst sends one GET to url per token, all at once (every goroutine is
// ready before the first request goes), and returns a wait that yields the
// statuses in token order; 0 stands for a transport error.
func burst(client *http.Client, url string, tokens []string) (wait func() []int) {
	codes := make([]int, len(tokens))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, tok := range tokens {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			<-start
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	close(start)
	return func() []int { wg.Wait(); return codes }
}

// repeat is n copies of tok.
func repeat(tok string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = tok
	}
	return out
}

// writeES256Key writes a fresh ES256 private key (PEM) to path, creating
// its folder, and returns the PEM.
func writeES256Key(t testing.TB, path string) []byte {
	t.Helper()
	_, pemBytes := oauthtest.WriteKey(t, path, "ES256")
	return pemBytes
}

// writeFile writes b to path (mode 0600), creating its folder.
func writeFile(t testing.TB, path string, b []byte) { oauthtest.WriteFile(t, path, b) }
