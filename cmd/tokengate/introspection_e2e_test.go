package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// e2eAS is an authorization server's RFC 7662 endpoint: it knows a set of
// opaque tokens and their claims, and can be taken down.
type e2eAS struct {
	*oauthtest.Introspection
	down  atomic.Bool
	calls atomic.Int32
	mu    sync.Mutex
	known map[string]map[string]any
}

const (
	e2eASClientID = "tokengate-gw"
	e2eASSecret   = "introspection-secret-4711"
)

func newE2EAS(t testing.TB) *e2eAS {
	t.Helper()
	as := &e2eAS{known: map[string]map[string]any{}}
	as.Introspection = oauthtest.NewIntrospection(t, as.answer)
	return as
}

// answer checks the client's credentials and the request, then says
// whether the token is one the AS issued.
func (as *e2eAS) answer(w http.ResponseWriter, r *http.Request, _ int) {
	as.calls.Add(1)
	if as.down.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != e2eASClientID || secret != e2eASSecret {
		writeJSONTest(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
		return
	}
	if r.Method != http.MethodPost || r.PostForm.Get("token_type_hint") != "access_token" {
		writeJSONTest(w, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
		return
	}
	as.mu.Lock()
	claims, ok := as.known[r.PostForm.Get("token")]
	as.mu.Unlock()
	if !ok {
		writeJSONTest(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	writeJSONTest(w, http.StatusOK, claims)
}

// issue makes an opaque token the AS knows as active with claims.
func (as *e2eAS) issue(token string, claims map[string]any) {
	c := map[string]any{"active": true, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "token_type": "Bearer"}
	for k, v := range claims {
		c[k] = v
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	as.known[token] = c
}

// startIntrospectionE2E starts tokengate whose issuer (idp) also
// introspects opaque tokens at as.
func startIntrospectionE2E(t *testing.T, idp *e2eIdP, as *e2eAS, orders, inventory *e2eBackend) *e2eGateway {
	t.Helper()
	t.Setenv("TOKENGATE_TEST_INTROSPECTION_SECRET", e2eASSecret)
	return startE2EWith(t, idp, orders, inventory, e2eOptions{edit: func(text, _ string) string {
		block := fmt.Sprintf("    min_refresh_interval: 1s\n    introspection_endpoint: %q\n    introspection:\n"+
			"      client_id: %s\n      client_secret: \"${TOKENGATE_TEST_INTROSPECTION_SECRET}\"\n      timeout: 1s\n",
			as.Endpoint(), e2eASClientID)
		return strings.Replace(text, "    min_refresh_interval: 1s\n", block, 1)
	}})
}

func TestE2EIntrospectionOpaqueTokenIsExchanged(t *testing.T) {
	idp, as := newE2EIdP(t), newE2EAS(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startIntrospectionE2E(t, idp, as, orders, inventory)
	const umbrella = "opaque-umbrella-Zk3F9qLx2VbN7cR1tY5uW8eA0sD4gH6j"
	as.issue(umbrella, map[string]any{
		"sub": "user-7", "client_id": "spa", "acr": "mfa",
		"aud":   []string{audOrders, audInventory},
		"scope": "orders:read orders:write inventory:read",
	})

	for range 3 {
		resp, body := g.get(t, "/orders/1", umbrella)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"orders"`) {
			t.Fatalf("orders: %d %s", resp.StatusCode, body)
		}
	}
	resp, body := g.get(t, "/inventory/widgets", umbrella)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("inventory: %d %s", resp.StatusCode, body)
	}
	if n := as.calls.Load(); n != 1 {
		t.Errorf("the AS was asked %d times for 4 requests, want 1 (cached)", n)
	}

	client := &http.Client{Timeout: 5 * time.Second}
	reqs := orders.received()
	if len(reqs) != 3 {
		t.Fatalf("orders received %d requests", len(reqs))
	}
	claims, _, err := newDemoBackend("orders", audOrders, g.issuer, client).verify(context.Background(), "Bearer "+bearerOf(reqs[0]))
	if err != nil {
		t.Fatalf("the exchanged token does not verify: %v", err)
	}
	if claims["aud"] != audOrders || claims["scope"] != "orders:read orders:write" || claims["sub"] != "user-7" {
		t.Errorf("exchanged claims %v: want the single audience, the route's scopes and the subject", claims)
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory)

	// A JWT from the same issuer still works, without asking the AS.
	jwtTok := idp.mint(t, map[string]any{"sub": "user-8", "aud": audOrders, "scope": "orders:read"})
	if resp, body := g.get(t, "/orders/2", jwtTok); resp.StatusCode != http.StatusOK {
		t.Fatalf("JWT: %d %s", resp.StatusCode, body)
	}
	if n := as.calls.Load(); n != 1 {
		t.Errorf("a JWT reached the AS (%d calls)", n)
	}
}

func TestE2EIntrospectionInactiveAndOutage(t *testing.T) {
	idp, as := newE2EIdP(t), newE2EAS(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startIntrospectionE2E(t, idp, as, orders, inventory)

	const unknown = "opaque-revoked-or-unknown-Q2w3E4r5T6y7U8i9"
	resp, body := g.get(t, "/orders/1", unknown)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("inactive: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}

	as.down.Store(true)
	const fresh = "opaque-while-the-AS-is-down-P0o9I8u7Y6t5R4e3"
	as.issue(fresh, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	resp, body = g.get(t, "/orders/1", fresh)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!strings.Contains(body, "introspection") {
		t.Fatalf("AS down: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := len(orders.received()); n != 0 {
		t.Errorf("orders received %d requests, want none", n)
	}
	assertNoUmbrella(t, unknown, g, orders, inventory)
	assertNoUmbrella(t, fresh, g, orders, inventory)

	metrics := func() string {
		_, body := get(t, g.srv.AdminURL()+"/metrics")
		return body
	}
	m := metrics()
	for _, want := range []string{
		`tokengate_introspections_total{result="inactive"} 1`,
		`tokengate_introspections_total{result="error"} 1`,
		`tokengate_token_rejections_total{reason="inactive"} 1`,
		"tokengate_introspection_duration_seconds_count 2",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestE2EIntrospectionTokenEndpoint: the RFC 8693 endpoint takes an opaque
// subject token through the same introspection: active → a single-audience
// token, inactive → 400 invalid_grant, the server down → 503.
func TestE2EIntrospectionTokenEndpoint(t *testing.T) {
	idp, as := newE2EIdP(t), newE2EAS(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startIntrospectionE2E(t, idp, as, orders, inventory)
	const subject = "opaque-subject-for-the-token-endpoint-0123456789"
	as.issue(subject, map[string]any{"sub": "svc-1", "aud": []string{audOrders, audInventory}, "scope": "orders:read inventory:read"})

	resp, out := exchangeAt(t, g, teForm(subject, audInventory))
	if resp.StatusCode != http.StatusOK || out["scope"] != "inventory:read" {
		t.Fatalf("active: %d %v", resp.StatusCode, out)
	}
	tok, _ := out["access_token"].(string)
	if tok == "" || strings.Contains(tok, subject) {
		t.Fatalf("access_token %q", tok)
	}

	resp, out = exchangeAt(t, g, teForm("opaque-unknown-subject-0123456789abcdef", audOrders))
	if resp.StatusCode != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Errorf("inactive: %d %v, want 400 invalid_grant", resp.StatusCode, out)
	}

	as.down.Store(true)
	resp, out = exchangeAt(t, g, teForm("opaque-while-down-0123456789abcdefgh", audOrders))
	if resp.StatusCode != http.StatusServiceUnavailable || out["error"] != "temporarily_unavailable" {
		t.Errorf("server down: %d %v, want 503 temporarily_unavailable", resp.StatusCode, out)
	}
	assertNoUmbrella(t, subject, g, orders, inventory)
}
