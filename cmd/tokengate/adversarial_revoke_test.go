package main

import (
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// respell returns the other valid spelling of an ES256 JWS: its signature
// (r, s) becomes (r, n−s) (ECDSA signatures are malleable; ordinary ES256
// signers produce either half the time, so both must verify).
func respell(t testing.TB, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("not an ES256 signature (%d bytes): %v", len(sig), err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	out := append([]byte(nil), sig[:32]...)
	out = append(out, s.FillBytes(make([]byte, 32))...)
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(out)
}

// withRevokeRoutes: orders forwards a Txn-Token, inventory both tokens (as
// withTxn), and "plain" an exchanged token for the orders audience.
func withRevokeRoutes(ordersURL string) func(text, edge string) string {
	return func(text, edge string) string {
		return withTxn(text, edge) + fmt.Sprintf(`  - name: plain
    path_prefix: /plain
    upstream: %q
    audience: %q
    scopes: [orders:read]
    timeout: 5s
`, ordersURL, audOrders)
	}
}

// tokenEndpoint exchanges subject for audience at the RFC 8693 endpoint.
func tokenEndpoint(t *testing.T, g *e2eGateway, subject, audience string) (int, map[string]any) {
	t.Helper()
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
		"audience":           {audience},
	}
	resp, err := http.PostForm(g.srv.EdgeURL()+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("token endpoint body %q: %v", b, err)
	}
	return resp.StatusCode, body
}

// assertRevoked: 401 invalid_token naming the revocation, on the edge.
func assertRevoked(t *testing.T, g *e2eGateway, path, tok string) {
	t.Helper()
	resp, body := g.get(t, path, tok)
	challenge := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) ||
		!strings.Contains(challenge, "revoked") {
		t.Errorf("%s: %d, WWW-Authenticate %q, %s; want 401 invalid_token (revoked)", path, resp.StatusCode, challenge, body)
	}
}

// TestAdversarialRevokeRespelled: a token revoked through /admin/revoke
// stays revoked when presented with a re-encoded signature, on routes of
// every forward kind and at the token endpoint.
func TestAdversarialRevokeRespelled(t *testing.T) {
	tests := []struct {
		name   string
		jti    string
		revoke func(t testing.TB, tok, respelled string) string // the spelling sent to /admin/revoke
	}{
		{"with jti, revoke the original", "jti-revoke-1", func(_ testing.TB, tok, _ string) string { return tok }},
		{"without jti, revoke the re-encoded spelling", "", func(_ testing.TB, _, other string) string { return other }},
		{"without jti, revoke a padded copy", "", func(t testing.TB, tok, _ string) string { return oauthtest.Reencode(t, tok, base64.URLEncoding) }},
	}
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{adminToken: e2eAdminToken, edit: withRevokeRoutes(orders.srv.URL)})
	paths := []string{"/plain/1", "/orders/1", "/inventory/1"}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			claims := map[string]any{"sub": fmt.Sprint("alice-", i), "aud": []string{audOrders, audInventory},
				"scope": "orders:read inventory:read"}
			if tc.jti != "" {
				claims["jti"] = tc.jti
			}
			tok := idp.mint(t, claims)
			other := respell(t, tok)
			claims["sub"] = fmt.Sprint("bob-", i)
			if tc.jti != "" {
				claims["jti"] = tc.jti + "-bob"
			}
			bystander := idp.mint(t, claims)
			// Both spellings are good tokens until the revocation.
			for _, raw := range []string{tok, other, bystander} {
				for _, p := range paths {
					if resp, body := g.get(t, p, raw); resp.StatusCode != http.StatusOK {
						t.Fatalf("before the revocation, %s: %d %s", p, resp.StatusCode, body)
					}
				}
			}
			resp, body := adminPost(t, g, e2eAdminToken, `{"token":"`+tc.revoke(t, tok, other)+`"}`)
			if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"revoked":"token"`) {
				t.Fatalf("revoke = %d %s", resp.StatusCode, body)
			}
			for _, raw := range []string{other, tok} {
				for _, p := range paths {
					assertRevoked(t, g, p, raw)
				}
				if status, body := tokenEndpoint(t, g, raw, audOrders); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
					t.Errorf("token endpoint: %d %v; want 400 invalid_grant", status, body)
				}
			}
			for _, p := range paths {
				if resp, body := g.get(t, p, bystander); resp.StatusCode != http.StatusOK {
					t.Errorf("another token on %s after the revocation: %d %s", p, resp.StatusCode, body)
				}
			}
		})
	}
}

// TestAdversarialRevokeBodiesThatRevokeNothing: 400 with a message that
// says what is missing, never a 200 that revoked nothing.
func TestAdversarialRevokeBodiesThatRevokeNothing(t *testing.T) {
	idp := newE2EIdP(t)
	g := startE2EWith(t, idp, newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"), e2eOptions{adminToken: e2eAdminToken})
	for _, tc := range []struct{ body, want string }{
		{`{}`, "names nothing to revoke"},
		{`{"token":"   "}`, `\"token\" is blank`},
		{`{"token":"not-a-jwt"}`, "not a JWT"},
	} {
		resp, body := adminPost(t, g, e2eAdminToken, tc.body)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"error":"invalid_request"`) || !strings.Contains(body, tc.want) {
			t.Errorf("revoke %s = %d %s; want 400 invalid_request saying %q", tc.body, resp.StatusCode, body, tc.want)
		}
	}
}

// TestE2ERedisRevokeRespelled: a token revoked on replica A is refused by
// replica B in its re-encoded spelling, which B had cached before.
func TestE2ERedisRevokeRespelled(t *testing.T) {
	rs := startReplicas(t, 2, nil)
	a, b := rs.gws[0], rs.gws[1]
	tok := rs.idp.mint(t, map[string]any{"sub": "carol", "aud": audOrders, "scope": "orders:read",
		"iat": time.Now().Add(-time.Minute).Unix()})
	other := respell(t, tok)
	for _, raw := range []string{tok, other} {
		if resp, body := b.get(t, "/orders", raw); resp.StatusCode != http.StatusOK {
			t.Fatalf("before the revocation: %d %s", resp.StatusCode, body)
		}
	}
	if resp, body := adminPost(t, a, e2eAdminToken, `{"token":"`+tok+`"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke on A = %d %s", resp.StatusCode, body)
	}
	// B learns the revocation through Redis pub/sub; it fails the test if
	// B still serves the re-encoded spelling after 20s.
	waitFor(t, func() bool {
		resp, _ := b.get(t, "/orders", other)
		return resp.StatusCode == http.StatusUnauthorized
	})
	assertRevoked(t, b, "/orders", other)
	assertRevoked(t, a, "/orders", other)
}

// TestAdversarialRevokeIntrospectedOpaque: with an issuer that introspects,
// /admin/revoke takes an opaque token value, and the revoked token is
// refused on its next use, answered from the introspection cache (the AS is
// not asked again), on a txn_token route and at the token endpoint.
func TestAdversarialRevokeIntrospectedOpaque(t *testing.T) {
	idp, as := newE2EIdP(t), newE2EAS(t)
	t.Setenv("TOKENGATE_TEST_INTROSPECTION_SECRET", e2eASSecret)
	g := startE2EWith(t, idp, newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"), e2eOptions{
		adminToken: e2eAdminToken,
		edit: func(text, edge string) string {
			block := fmt.Sprintf("    min_refresh_interval: 1s\n    introspection_endpoint: %q\n    introspection:\n"+
				"      client_id: %s\n      client_secret: \"${TOKENGATE_TEST_INTROSPECTION_SECRET}\"\n      timeout: 1s\n",
				as.Endpoint(), e2eASClientID)
			return withTxn(strings.Replace(text, "    min_refresh_interval: 1s\n", block, 1), edge)
		},
	})
	const opaque = "opaque-revoke-Qm4T8wZp1KcV6nB3xR9yL2dF7hJ0sG5a"
	as.issue(opaque, map[string]any{"sub": "user-9", "aud": []string{audOrders, audInventory},
		"scope": "orders:read inventory:read"})
	for _, p := range []string{"/orders/1", "/inventory/1"} {
		if resp, body := g.get(t, p, opaque); resp.StatusCode != http.StatusOK {
			t.Fatalf("before the revocation, %s: %d %s", p, resp.StatusCode, body)
		}
	}
	calls := as.calls.Load()
	resp, body := adminPost(t, g, e2eAdminToken, `{"token":"`+opaque+`"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"revoked":"token"`) || strings.Contains(body, opaque) {
		t.Fatalf("revoke = %d %s", resp.StatusCode, body)
	}
	for _, p := range []string{"/orders/1", "/inventory/1"} {
		assertRevoked(t, g, p, opaque)
	}
	if status, body := tokenEndpoint(t, g, opaque, audOrders); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("token endpoint: %d %v; want 400 invalid_grant", status, body)
	}
	// The revocation dropped the cached answer (issue 19): the AS is asked
	// once more, and its new answer is cached for the other requests.
	if n := as.calls.Load(); n != calls+1 {
		t.Errorf("the AS was asked %d more times; want 1 (the dropped answer, then the introspection cache answers)", n-calls)
	}
}
