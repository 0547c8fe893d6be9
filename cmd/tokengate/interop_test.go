package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange/keys"
)

const (
	ioOrders    = "https://orders.example.com"
	ioInventory = "https://inventory.example.com"
	ioBilling   = "https://billing.example.com"
	// ioUmbrella is the umbrella API's resource indicator at the provider.
	ioUmbrella  = "urn:tokengate:umbrella"
	ioAppID     = "app"
	ioAppSecret = "app-secret"
	// ioBasicSecret has what RFC 6749 2.3.1's form-encoding is for: a space,
	// ":", "+", "%", "/", "&" and "=".
	ioBasicSecret = "tg p@ss:w+rd/%&=x"
	ioBasicClient = "tokengate-basic"
	ioJWTClient   = "tokengate-jwt"
)

// ioProviderConfig is what e2e/provider.mjs reads.
func ioProviderConfig(t *testing.T, jwtClientKey any) []byte {
	t.Helper()
	te := "urn:ietf:params:oauth:grant-type:token-exchange"
	cfg := map[string]any{
		"apis": []map[string]any{
			{"audience": ioOrders, "scopes": []string{"orders:read", "orders:write"}},
			{"audience": ioInventory, "scopes": []string{"inventory:read"}},
			{"audience": ioBilling, "scopes": []string{"billing:read"}},
		},
		"umbrella": ioUmbrella,
		// The provider never exchanges for billing: its answer is invalid_target.
		"deny": []string{ioBilling},
		"clients": []map[string]any{
			{"client_id": ioAppID, "client_secret": ioAppSecret, "grant_types": []string{"client_credentials"},
				"response_types": []string{}, "redirect_uris": []string{},
				"scope": "orders:read orders:write inventory:read billing:read"},
			{"client_id": ioBasicClient, "client_secret": ioBasicSecret, "grant_types": []string{te},
				"response_types": []string{}, "redirect_uris": []string{}, "token_endpoint_auth_method": "client_secret_basic"},
			{"client_id": ioJWTClient, "grant_types": []string{te},
				"response_types": []string{}, "redirect_uris": []string{}, "token_endpoint_auth_method": "private_key_jwt",
				"token_endpoint_auth_signing_alg": "ES256", "jwks": map[string]any{"keys": []any{jwtClientKey}}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ioRoutes are the routes of every interop gateway: each backend gets the
// token for its own API, and one route sends each backend a token for the
// other API, which it must refuse.
func ioRoutes(goBackend, nodeBackend string) string {
	route := func(name, upstream, audience, scopes string) string {
		return fmt.Sprintf("  - name: %s\n    path_prefix: /%s\n    upstream: %q\n    audience: %q\n    scopes: [%s]\n",
			name, name, upstream, audience, scopes)
	}
	return "routes:\n" +
		route("orders", goBackend, ioOrders, "orders:read, orders:write") +
		route("inventory", nodeBackend, ioInventory, "inventory:read") +
		route("orders-at-node", nodeBackend, ioOrders, "orders:read") +
		route("inventory-at-go", goBackend, ioInventory, "inventory:read") +
		route("billing", goBackend, ioBilling, "billing:read")
}

// ioGateway is tokengate started from a configuration file for an interop test.
type ioGateway struct {
	srv  *server
	logs *syncBuffer
}

// startIOGateway starts tokengate from configuration text. adminLn, when
// not nil, is the admin listener bound already (its URL is in text).
func startIOGateway(t *testing.T, dir, text string, adminLn net.Listener) *ioGateway {
	t.Helper()
	edgeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if adminLn == nil {
		if adminLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "tokengate.yaml")
	writeFile(t, path, []byte(text))
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	srv, err := startServer(context.Background(), serverOptions{
		ConfigPath: path, Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		EdgeListener: edgeLn, AdminListener: adminLn,
	})
	if err != nil {
		t.Fatalf("start tokengate: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		if t.Failed() {
			t.Logf("tokengate logs:\n%s", logs.String())
		}
	})
	gw := &ioGateway{srv: srv, logs: logs}
	waitFor(t, func() bool {
		resp, err := http.Get(srv.AdminURL() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return gw
}

// ioUnverifiedClaims reads a JWT's payload, for the test's own assertions.
func ioUnverifiedClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// ioStats is how many exchanges the provider performed.
func ioStats(t *testing.T, issuer string) int {
	t.Helper()
	resp, err := http.Get(issuer + "/test/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct{ Exchanges int }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Exchanges
}

// ioCheck is what one gateway must show with real backends.
type ioCheck struct {
	wantIss string // iss of the tokens the backends accept
	wantAct string // act.sub of the exchanged tokens
	remote  bool
}

// ioCheckFlows sends the umbrella token through every route: each backend
// accepts the token exchanged for its own API and refuses the one exchanged
// for the other; a denied exchange (remote) never reaches a backend.
func ioCheckFlows(t *testing.T, gw *ioGateway, goBE *oidcBackend, umbrella, issuer string, c ioCheck) {
	t.Helper()
	edge := gw.srv.EdgeURL()
	statsBefore := 0
	if c.remote {
		statsBefore = ioStats(t, issuer)
	}
	accept := []struct {
		path, backend, aud, scope string
	}{
		{"/orders/1", "go-oidc", ioOrders, "orders:read"},
		{"/inventory", "node-jose", ioInventory, "inventory:read"},
	}
	for _, a := range accept {
		status, ans, body := edgeGet(t, edge, a.path, umbrella)
		if status != http.StatusOK || ans.Backend != a.backend {
			t.Fatalf("GET %s = %d %s; want 200 from the %s backend", a.path, status, body, a.backend)
		}
		cl := ans.Claims
		if cl["aud"] != a.aud || cl["iss"] != c.wantIss || cl["scope"] != a.scope || cl["sub"] != ioAppID {
			t.Errorf("GET %s: the %s backend verified aud=%v iss=%v scope=%v sub=%v; want %s %s %q %s",
				a.path, a.backend, cl["aud"], cl["iss"], cl["scope"], cl["sub"], a.aud, c.wantIss, a.scope, ioAppID)
		}
		if act, _ := cl["act"].(map[string]any); act["sub"] != c.wantAct {
			t.Errorf("GET %s: act = %v, want sub %s", a.path, cl["act"], c.wantAct)
		}
	}
	// The same requests again: served from the cache, no new exchange.
	for _, a := range accept {
		if status, _, body := edgeGet(t, edge, a.path, umbrella); status != http.StatusOK {
			t.Fatalf("GET %s again = %d %s", a.path, status, body)
		}
	}
	if c.remote {
		if got := ioStats(t, issuer) - statsBefore; got != 2 {
			t.Errorf("the provider performed %d exchanges for 2 audiences × 2 requests, want 2 (cache)", got)
		}
	}

	reject := []struct {
		path, backend, why string
	}{
		{"/orders-at-node", "node-jose", "ERR_JWT_CLAIM_VALIDATION_FAILED"},
		{"/inventory-at-go", "go-oidc", "audience"},
	}
	for _, r := range reject {
		status, ans, body := edgeGet(t, edge, r.path, umbrella)
		if status != http.StatusUnauthorized || !strings.Contains(ans.Error+" "+ans.Message, r.why) {
			t.Errorf("GET %s = %d %s; want the %s backend to refuse a token for the other API (%s)", r.path, status, body, r.backend, r.why)
		}
	}

	if c.remote {
		before := len(goBE.received())
		status, ans, body := edgeGet(t, edge, "/billing", umbrella)
		if status != http.StatusForbidden || ans.Error != "insufficient_scope" {
			t.Errorf("GET /billing = %d %s; want 403 insufficient_scope (the provider answers invalid_target)", status, body)
		}
		if len(goBE.received()) != before {
			t.Error("a request whose exchange was denied reached a backend")
		}
	}
	for _, tok := range goBE.received() {
		if tok == umbrella {
			t.Fatal("the Go backend received the umbrella token")
		}
	}
	sig := umbrella[strings.LastIndex(umbrella, ".")+1:]
	if strings.Contains(gw.logs.String(), sig) {
		t.Error("the umbrella token appears in tokengate's logs")
	}
}

// TestInteropNodeOIDCProvider runs tokengate against node-oidc-provider and
// two backends that verify with standard libraries (go-oidc, jose):
// remote mode with client_secret_basic (token endpoint found through the
// provider's discovery, resource sent), remote mode with private_key_jwt,
// and local mode verifying the provider's umbrella tokens through discovery.
func TestInteropNodeOIDCProvider(t *testing.T) {
	node := requireNode(t)
	dir := t.TempDir()

	// tokengate's client key for private_key_jwt, registered at the provider.
	keyPath := filepath.Join(dir, "sts-client.pem")
	writeES256Key(t, keyPath)
	clientKey, err := keys.LoadClientKey(config.SigningKey{File: keyPath, Alg: "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	issuer := startProvider(t, node, ioProviderConfig(t, clientKey.Public))

	// The client gets ONE umbrella token for every API.
	umbrella := clientCredentials(t, issuer, ioUmbrella, "orders:read inventory:read billing:read")
	if aud, _ := ioUnverifiedClaims(t, umbrella)["aud"].([]any); len(aud) != 3 {
		t.Fatalf("the umbrella token's aud is %v, want the three APIs", ioUnverifiedClaims(t, umbrella)["aud"])
	}

	// Backends that trust the provider (remote mode).
	goBE := newOIDCBackend(t, issuer, ioOrders)
	nodeBE := startNodeBackend(t, node, issuer, ioInventory)
	issuers := fmt.Sprintf("issuers:\n  - issuer: %q\n    discovery: true\n    algorithms: [RS256]\n", issuer)
	head := "server:\n  listen: \"127.0.0.1:0\"\n  admin_listen: \"127.0.0.1:0\"\nlog:\n  level: debug\n" + issuers

	t.Run("remote client_secret_basic via discovery", func(t *testing.T) {
		t.Setenv("TOKENGATE_IO_SECRET", ioBasicSecret)
		gw := startIOGateway(t, t.TempDir(), head+fmt.Sprintf(`exchange:
  mode: remote
  remote:
    issuer: %q
    client_id: %s
    client_secret: ${TOKENGATE_IO_SECRET}
    auth_method: client_secret_basic
    resource: true
    timeout: 5s
`, issuer, ioBasicClient)+ioRoutes(goBE.srv.URL, nodeBE), nil)
		if resp, body := get(t, gw.srv.AdminURL()+"/readyz"); resp.StatusCode != 200 {
			t.Fatalf("readyz = %d %s", resp.StatusCode, body)
		}
		ioCheckFlows(t, gw, goBE, umbrella, issuer, ioCheck{wantIss: issuer, wantAct: ioBasicClient, remote: true})
	})

	t.Run("remote private_key_jwt", func(t *testing.T) {
		gw := startIOGateway(t, t.TempDir(), head+fmt.Sprintf(`exchange:
  mode: remote
  remote:
    token_endpoint: %q
    client_id: %s
    auth_method: private_key_jwt
    private_key: {file: %q, alg: ES256}
    timeout: 5s
`, issuer+"/token", ioJWTClient, keyPath)+ioRoutes(goBE.srv.URL, nodeBE), nil)
		ioCheckFlows(t, gw, goBE, umbrella, issuer, ioCheck{wantIss: issuer, wantAct: ioJWTClient, remote: true})
	})

	t.Run("local mode verifies the provider's tokens", func(t *testing.T) {
		gwDir, adminLn, iss, goLocal, nodeLocal := ioLocalSide(t, node)
		gw := startIOGateway(t, gwDir, head+fmt.Sprintf("exchange:\n  local:\n    issuer: %q\n    signing_keys: [{file: es256.pem, alg: ES256}]\n", iss)+
			ioRoutes(goLocal.srv.URL, nodeLocal), adminLn)
		ioCheckFlows(t, gw, goLocal, umbrella, issuer, ioCheck{wantIss: iss, wantAct: iss})
	})
}
