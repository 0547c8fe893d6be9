package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/exchange"
)

const (
	audUmbrella = "https://api.example.com" // Auth0's "umbrella API"
	audPayments = "https://payments.example.com"
	grantTE     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// policyConfig adds to the e2e configuration what an Auth0 tenant needs:
// the umbrella API audience, permissions as scopes, gty copied, the edge's
// public URL, and a payments route with namespaced scopes and step-up.
func policyConfig(paymentsUpstream string) func(text, edge string) string {
	return func(text, edge string) string {
		text = strings.Replace(text, "  shutdown_grace: 10s\n",
			"  shutdown_grace: 10s\n  public_url: \"http://"+edge+"\"\n", 1)
		text = strings.Replace(text, "    min_refresh_interval: 1s\n",
			"    min_refresh_interval: 1s\n    umbrella_audience: \""+audUmbrella+"\"\n    permissions_as_scopes: true\n", 1)
		text = strings.Replace(text, "        alg: ES256\n",
			"        alg: ES256\n    copy_claims: [sub, client_id, azp, acr, amr, auth_time, gty]\n", 1)
		return text + fmt.Sprintf(`  - name: payments
    path_prefix: /payments
    upstream: %q
    audience: %q
    scope_prefix: "https://payments.example.com/"
    strip_scope_prefix: true
    required_scopes: ["https://payments.example.com/read"]
    allowed_clients: [spa, m2m-client]
    acr_values: [mfa]
    max_age: 5m
    timeout: 5s
`, paymentsUpstream, audPayments)
	}
}

// exchangeAt posts an RFC 8693 request to the gateway's token endpoint.
func exchangeAt(t *testing.T, g *e2eGateway, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(g.srv.EdgeURL()+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("token endpoint body %q: %v", body, err)
	}
	return resp, out
}

func teForm(subject, audience string, extra ...string) url.Values {
	f := url.Values{
		"grant_type":         {grantTE},
		"subject_token":      {subject},
		"subject_token_type": {exchange.TokenTypeAccessToken},
		"audience":           {audience},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return f
}

// TestE2ETokenEndpoint: an Auth0-shaped umbrella token (aud = the umbrella
// API, namespaced scopes, azp) exchanged at the token endpoint, found
// through discovery, for a token that a backend verifies with go-jose using
// the keys it discovers from the gateway's issuer URL.
func TestE2ETokenEndpoint(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	payments := newE2EBackend(t, "payments")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: policyConfig(payments.srv.URL)})
	umbrella := idp.mint(t, map[string]any{
		"sub": "auth0|user-1", "azp": "spa", "acr": "mfa", "auth_time": time.Now().Add(-time.Minute).Unix(),
		"aud":   []string{audUmbrella, "https://tenant.auth0.com/userinfo"},
		"scope": "openid orders:read https://payments.example.com/read https://payments.example.com/refund",
	})

	// Discovery on the admin listener names the endpoint at the public URL.
	_, body := get(t, g.srv.AdminURL()+"/.well-known/openid-configuration")
	var disc struct {
		TokenEndpoint string   `json:"token_endpoint"`
		Grants        []string `json:"grant_types_supported"`
	}
	if err := json.Unmarshal([]byte(body), &disc); err != nil {
		t.Fatal(err)
	}
	if disc.TokenEndpoint != g.srv.EdgeURL()+"/oauth2/token" || len(disc.Grants) != 1 || disc.Grants[0] != grantTE {
		t.Fatalf("discovery: token_endpoint %q, grant_types %q", disc.TokenEndpoint, disc.Grants)
	}

	client := &http.Client{Timeout: 5 * time.Second}
	tests := []struct {
		name, audience, scope string
		extra                 []string
		issued                string
	}{
		{name: "payments, prefix stripped", audience: audPayments, scope: "read refund", issued: exchange.TokenTypeAccessToken},
		{name: "payments, narrowed", audience: audPayments, scope: "refund", extra: []string{"scope", "refund"}, issued: exchange.TokenTypeAccessToken},
		{name: "orders, as a JWT", audience: audOrders, scope: "orders:read", extra: []string{"requested_token_type", exchange.TokenTypeJWT}, issued: exchange.TokenTypeJWT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := exchangeAt(t, g, teForm(umbrella, tc.audience, tc.extra...))
			if resp.StatusCode != 200 {
				t.Fatalf("%d %v", resp.StatusCode, out)
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
				t.Errorf("caching headers %q %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
			}
			if out["token_type"] != "Bearer" || out["issued_token_type"] != tc.issued || out["scope"] != tc.scope {
				t.Errorf("response %v", out)
			}
			if exp, _ := out["expires_in"].(float64); exp < 290 || exp > 300 {
				t.Errorf("expires_in = %v, want about token_ttl (300)", out["expires_in"])
			}
			tok, _ := out["access_token"].(string)
			claims, header, err := newDemoBackend("backend", tc.audience, g.issuer, client).verify(context.Background(), "Bearer "+tok)
			if err != nil {
				t.Fatalf("a backend cannot verify the exchanged token with discovery + go-jose: %v", err)
			}
			if claims["aud"] != tc.audience || claims["scope"] != tc.scope || claims["sub"] != "auth0|user-1" ||
				claims["client_id"] != "spa" || claims["acr"] != "mfa" || header["typ"] != "at+jwt" {
				t.Errorf("exchanged claims %v, header %v", claims, header)
			}
			if _, _, err := newDemoBackend("other", audInventory, g.issuer, client).verify(context.Background(), "Bearer "+tok); err == nil {
				t.Error("the token is accepted for another audience")
			}
		})
	}

	// The edge gives the payments backend the same clean token shape.
	if resp, body := g.get(t, "/payments/charges", umbrella); resp.StatusCode != 200 {
		t.Fatalf("edge: %d %s", resp.StatusCode, body)
	}
	got := payments.received()
	var c map[string]any
	parsed, err := jwt.ParseSigned(bearerOf(got[len(got)-1]), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	if c["aud"] != audPayments || c["scope"] != "read refund" {
		t.Errorf("edge token aud %v scope %v", c["aud"], c["scope"])
	}

	// Refusals: the codes a client can act on, never the token.
	refusals := []struct {
		name string
		form url.Values
		code string
	}{
		{"unknown audience", teForm(umbrella, "https://nowhere.example.com"), "invalid_target"},
		{"broader scope", teForm(umbrella, audPayments, "scope", "read admin"), "invalid_scope"},
		{"forged token", teForm(umbrella[:len(umbrella)-4]+"AAAA", audPayments), "invalid_grant"},
		{"other grant", url.Values{"grant_type": {"client_credentials"}}, "unsupported_grant_type"},
	}
	for _, tc := range refusals {
		resp, out := exchangeAt(t, g, tc.form)
		if resp.StatusCode != 400 || out["error"] != tc.code {
			t.Errorf("%s: %d %v, want 400 %s", tc.name, resp.StatusCode, out, tc.code)
		}
	}
	_, metrics := get(t, g.srv.AdminURL()+"/metrics")
	for _, want := range []string{
		`tokengate_requests_total{code="200",route="token_endpoint"} 3`,
		`tokengate_requests_total{code="400",route="token_endpoint"} 4`,
		`tokengate_token_rejections_total{reason="signature"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory, payments)
}

// TestE2EStepUpRoundTrip: RFC 9470 with real tokens: the password-only
// login is refused at the edge with a challenge and at the token endpoint
// with the same requirements; a new login satisfying them is accepted by
// both.
func TestE2EStepUpRoundTrip(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory, payments := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"), newE2EBackend(t, "payments")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: policyConfig(payments.srv.URL)})
	claims := func(acr string, authAge time.Duration) map[string]any {
		return map[string]any{
			"sub": "auth0|user-1", "azp": "spa", "aud": audUmbrella, "acr": acr,
			"auth_time": time.Now().Add(-authAge).Unix(), "scope": "https://payments.example.com/read",
		}
	}
	weak := idp.mint(t, claims("pwd", 2*time.Hour))

	resp, _ := g.get(t, "/payments", weak)
	want := `Bearer error="insufficient_user_authentication", error_description="the authentication context class (acr) is not one this route accepts", acr_values="mfa", max_age="300"`
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("edge: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	r2, out := exchangeAt(t, g, teForm(weak, audPayments))
	if r2.StatusCode != 400 || out["error"] != "invalid_grant" || out["acr_values"] != "mfa" || out["max_age"] != float64(300) {
		t.Fatalf("token endpoint: %d %v", r2.StatusCode, out)
	}
	if len(payments.received()) != 0 {
		t.Fatal("a refused token reached the backend")
	}

	// The client re-authenticates with acr_values=mfa and max_age=300.
	strong := idp.mint(t, claims("mfa", 10*time.Second))
	if resp, body := g.get(t, "/payments", strong); resp.StatusCode != 200 {
		t.Fatalf("edge after step-up: %d %s", resp.StatusCode, body)
	}
	if r, out := exchangeAt(t, g, teForm(strong, audPayments)); r.StatusCode != 200 {
		t.Fatalf("token endpoint after step-up: %d %v", r.StatusCode, out)
	}
	// MFA long ago is still too old.
	if resp, _ := g.get(t, "/payments", idp.mint(t, claims("mfa", 10*time.Minute))); resp.StatusCode != 401 ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), "older than this route's max_age") {
		t.Errorf("stale MFA: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestE2EMachineToMachine: an Auth0 client-credentials token (sub
// CLIENT@clients, gty, azp, permissions) reaches routes without step-up,
// is refused where a user authentication is required, and its exchanged
// token names the client.
func TestE2EMachineToMachine(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory, payments := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"), newE2EBackend(t, "payments")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: policyConfig(payments.srv.URL)})
	m2m := idp.mint(t, map[string]any{
		"sub": "m2m-client@clients", "azp": "m2m-client", "gty": "client-credentials", "aud": audUmbrella,
		"permissions": []string{"orders:read", "https://payments.example.com/read"},
	})
	if resp, body := g.get(t, "/orders/7", m2m); resp.StatusCode != 200 {
		t.Fatalf("orders: %d %s", resp.StatusCode, body)
	}
	var c map[string]any
	parsed, err := jwt.ParseSigned(bearerOf(orders.received()[0]), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	if c["sub"] != "m2m-client@clients" || c["client_id"] != "m2m-client" || c["gty"] != "client-credentials" || c["scope"] != "orders:read" {
		t.Errorf("exchanged M2M claims %v", c)
	}
	// payments requires a user's MFA: a machine cannot step up.
	resp, _ := g.get(t, "/payments", m2m)
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_user_authentication") {
		t.Errorf("payments with an M2M token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if r, out := exchangeAt(t, g, teForm(m2m, audOrders)); r.StatusCode != 200 || out["scope"] != "orders:read" {
		t.Errorf("token endpoint: %d %v", r.StatusCode, out)
	}
	// Another machine client is not on the payments allowlist.
	other := idp.mint(t, map[string]any{"sub": "robot@clients", "azp": "robot", "gty": "client-credentials", "aud": audUmbrella,
		"permissions": []string{"https://payments.example.com/read"}})
	if resp, body := g.get(t, "/payments", other); resp.StatusCode != 403 || !strings.Contains(body, "unauthorized_client") {
		t.Errorf("unlisted client: %d %s", resp.StatusCode, body)
	}
	if len(payments.received()) != 0 {
		t.Errorf("payments received %d requests", len(payments.received()))
	}
}
