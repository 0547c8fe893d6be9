package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestE2EProviderTokenShapes: umbrella tokens shaped as Ory Hydra, Auth0
// (RBAC permissions) and Dex issue them pass through the real gateway: the
// scopes come from Hydra's scp array, Auth0's permissions count with
// permissions_as_scopes, and a Dex token whose aud is the client ID reaches
// every route through umbrella_audience. The backend receives a token for
// its audience with the downscoped scopes.
func TestE2EProviderTokenShapes(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: func(text, _ string) string {
		return strings.Replace(text, "    min_refresh_interval: 1s\n",
			"    min_refresh_interval: 1s\n    umbrella_audience: dex-umbrella-client\n    permissions_as_scopes: true\n", 1)
	}})
	tests := []struct {
		name   string
		claims map[string]any
		scope  string
	}{
		{"hydra scp array", map[string]any{"sub": "hydra-user", "client_id": "hydra-app",
			"aud": []string{audOrders}, "scp": []string{"orders:read", "orders:write", "offline"}}, "orders:read orders:write"},
		{"auth0 permissions", map[string]any{"sub": "auth0|u1", "azp": "spa", "aud": []string{audOrders, "https://tenant.auth0.com/userinfo"},
			"scope": "openid", "permissions": []string{"orders:read"}}, "orders:read"},
		{"dex client audience", map[string]any{"sub": "Cg1kZXgtdXNlcg", "azp": "dex-umbrella-client", "aud": "dex-umbrella-client",
			"scope": "orders:read"}, "orders:read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(orders.received())
			resp, body := g.get(t, "/orders/1", idp.mint(t, tt.claims))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d %s", resp.StatusCode, body)
			}
			got := orders.received()
			if len(got) != before+1 {
				t.Fatalf("the backend received %d requests", len(got)-before)
			}
			c := ioUnverifiedClaims(t, bearerOf(got[len(got)-1]))
			if c["aud"] != audOrders || c["scope"] != tt.scope || c["sub"] != tt.claims["sub"] {
				t.Errorf("exchanged token aud=%v scope=%v sub=%v; want %s %q %v", c["aud"], c["scope"], c["sub"], audOrders, tt.scope, tt.claims["sub"])
			}
		})
	}
}
