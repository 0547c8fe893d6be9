package main

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/exchange"
)

// TestE2ETokenEndpointTarget: the RFC 8693 target through real HTTP, the
// real verifier and the real signer: resource (RFC 8707) works like
// audience, both together must agree, and a route audience that the subject
// token's aud does not allow is invalid_target (not invalid_grant).
func TestE2ETokenEndpointTarget(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	forOrders := idp.mint(t, map[string]any{"sub": "user-1", "aud": audOrders, "scope": "orders:read"})
	resourceOnly := func(subject, resource string) url.Values {
		f := teForm(subject, "", "resource", resource)
		f.Del("audience")
		return f
	}
	tests := []struct {
		name string
		form url.Values
		code string // "" for success
	}{
		{name: "audience", form: teForm(forOrders, audOrders)},
		{name: "resource instead of audience", form: resourceOnly(forOrders, audOrders)},
		{name: "audience and the same resource", form: teForm(forOrders, audOrders, "resource", audOrders)},
		{name: "audience and another resource", form: teForm(forOrders, audOrders, "resource", audInventory), code: "invalid_target"},
		{name: "resource not a route audience", form: resourceOnly(forOrders, "https://elsewhere.example.com"), code: "invalid_target"},
		{name: "route audience the token's aud does not allow", form: teForm(forOrders, audInventory), code: "invalid_target"},
		{name: "resource the token's aud does not allow", form: resourceOnly(forOrders, audInventory), code: "invalid_target"},
		{name: "unknown audience", form: teForm(forOrders, "https://elsewhere.example.com"), code: "invalid_target"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := exchangeAt(t, g, tc.form)
			if tc.code != "" {
				if resp.StatusCode != 400 || out["error"] != tc.code {
					t.Fatalf("%d %v, want 400 %s", resp.StatusCode, out, tc.code)
				}
				if raw, _ := json.Marshal(out); strings.Contains(string(raw), "elsewhere") || strings.Contains(string(raw), forOrders) {
					t.Errorf("the error echoes the request: %s", raw)
				}
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%d %v", resp.StatusCode, out)
			}
			tok, err := jwt.ParseSigned(out["access_token"].(string), []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatal(err)
			}
			var c jwt.Claims
			if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
				t.Fatal(err)
			}
			if len(c.Audience) != 1 || c.Audience[0] != audOrders || c.Expiry.Time().Before(time.Now()) {
				t.Errorf("aud %v exp %v, want %s and a future expiry", c.Audience, c.Expiry.Time(), audOrders)
			}
			if out["issued_token_type"] != exchange.TokenTypeAccessToken {
				t.Errorf("issued_token_type %v", out["issued_token_type"])
			}
		})
	}
	if got := g.logs.String(); strings.Contains(got, forOrders) {
		t.Error("the subject token reached the log")
	}
	if n := len(orders.received()) + len(inventory.received()); n != 0 {
		t.Errorf("backends received %d requests from the token endpoint", n)
	}
}
