package verify

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// TestVerifyPermissionsAsScopes: with permissions_as_scopes, Auth0's RBAC
// "permissions" claim adds to the scopes; without it, the claim is ignored.
func TestVerifyPermissionsAsScopes(t *testing.T) {
	t.Parallel()
	on := vtNewEnv(t, func(ic *config.Issuer) { ic.PermissionsAsScopes = true })
	off := vtNewEnv(t, nil)
	tests := []struct {
		name   string
		env    *vtEnv
		edit   func(map[string]any)
		want   []string
		reject string
	}{
		{name: "merged after scope, no duplicates", env: on,
			edit: func(c map[string]any) {
				c["scope"] = "openid orders:read"
				c["permissions"] = []string{"orders:read", "orders:write", "", "bad perm"}
			},
			want: []string{"openid", "orders:read", "orders:write"}},
		{name: "permissions alone", env: on,
			edit: func(c map[string]any) { delete(c, "scope"); c["permissions"] = []string{"orders:read"} },
			want: []string{"orders:read"}},
		{name: "no permissions claim", env: on,
			edit: func(c map[string]any) { c["scope"] = "orders:read" },
			want: []string{"orders:read"}},
		{name: "wrong type is malformed", env: on,
			edit:   func(c map[string]any) { c["permissions"] = "orders:read" },
			reject: exchange.ReasonMalformed},
		{name: "ignored when off", env: off,
			edit: func(c map[string]any) { c["scope"] = "openid"; c["permissions"] = []string{"orders:write"} },
			want: []string{"openid"}},
		{name: "wrong type ignored when off", env: off,
			edit: func(c map[string]any) { c["scope"] = "openid"; c["permissions"] = 42 },
			want: []string{"openid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.env.token(t, tc.edit)
			tok, err := tc.env.v.Verify(context.Background(), raw, vtAudOrders)
			if tc.reject != "" {
				vtWantReject(t, err, tc.reject, raw)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tok.Claims.Scopes, tc.want) {
				t.Errorf("Scopes = %q, want %q", tok.Claims.Scopes, tc.want)
			}
		})
	}
}

// TestVerifyM2MToken: an Auth0 client-credentials token (sub CLIENT@clients,
// gty, azp, no client_id) verifies like a user token; azp is its client.
func TestVerifyM2MToken(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, func(ic *config.Issuer) { ic.UmbrellaAudience = vtAudUmbrella; ic.PermissionsAsScopes = true })
	raw := e.token(t, func(c map[string]any) {
		delete(c, "client_id")
		c["sub"] = "m2m-client@clients"
		c["azp"] = "m2m-client"
		c["gty"] = "client-credentials"
		c["aud"] = vtAudUmbrella
		c["scope"] = "orders:read"
		c["permissions"] = []string{"orders:read", "billing:read"}
	})
	tok, err := e.v.Verify(context.Background(), raw, vtAudOrders)
	if err != nil {
		t.Fatal(err)
	}
	c := tok.Claims
	if c.Subject != "m2m-client@clients" || c.ClientID != "m2m-client" || c.AZP != "m2m-client" {
		t.Errorf("sub %q client_id %q azp %q", c.Subject, c.ClientID, c.AZP)
	}
	if !slices.Equal(c.Scopes, []string{"orders:read", "billing:read"}) {
		t.Errorf("Scopes = %q", c.Scopes)
	}
	if string(c.Extra["gty"]) != `"client-credentials"` {
		t.Errorf("gty not kept for copy_claims: %s", c.Extra["gty"])
	}
	if !c.AuthTime.IsZero() || c.ACR != "" {
		t.Errorf("an M2M token has no auth_time or acr: %v %q", c.AuthTime, c.ACR)
	}
}

// TestInspectUnverified: every check but the signature, nothing fetched.
func TestInspectUnverified(t *testing.T) {
	t.Parallel()
	e := vtNewEnv(t, nil)
	e.idp.SetJWKSStatus(http.StatusInternalServerError) // nothing may be fetched
	stranger := oauthtest.NewSigningKey(t, "ES256", "k1")
	forged := stranger.Sign(t, nil, e.claims())

	tok, err := e.v.InspectUnverified(forged, vtAudOrders)
	if err != nil {
		t.Fatalf("a forged token with good claims is inspectable: %v", err)
	}
	if tok.Claims.Subject != "user-1" || !slices.Equal(tok.Claims.Audience, []string{vtAudOrders, vtAudBilling}) {
		t.Errorf("claims = %+v", tok.Claims)
	}
	if tok, err := e.v.InspectUnverified(forged, ""); err != nil || tok.Claims.Subject != "user-1" {
		t.Errorf("audience \"\" skips the audience check: %v", err)
	}
	if _, err := e.v.InspectUnverified(forged, "https://other.example.com"); err == nil {
		t.Error("audience not checked")
	} else {
		vtWantReject(t, err, exchange.ReasonAudience, forged)
	}
	expired := stranger.Sign(t, nil, func() map[string]any {
		c := e.claims()
		c["exp"] = e.clock.Now().Unix() - 3600
		return c
	}())
	_, err = e.v.InspectUnverified(expired, vtAudOrders)
	vtWantReject(t, err, exchange.ReasonExpired, expired)

	if hits := e.idp.JWKSFetches(); hits != 0 {
		t.Errorf("InspectUnverified fetched the JWKS %d times", hits)
	}
	if e.sigs.Load() != 0 {
		t.Errorf("InspectUnverified checked a signature")
	}
	// And it never makes Verify accept the forged token.
	if _, err := e.v.Verify(context.Background(), forged, vtAudOrders); err == nil {
		t.Fatal("Verify accepted a forged token after InspectUnverified")
	}
}
