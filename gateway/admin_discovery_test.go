package gateway

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

// TestAdminDiscoveryRequiredMembers: the metadata has every member RFC 8414
// and OpenID Discovery call REQUIRED, with values that say what tokengate
// does, under the OIDC path and RFC 8414's (path inserted before the
// issuer's path); without a token endpoint, grant_types_supported is empty
// rather than missing (a missing one means authorization_code and implicit).
func TestAdminDiscoveryRequiredMembers(t *testing.T) {
	tests := []struct {
		name, issuer, tokenEndpoint string
		paths                       []string
		want                        map[string]any
	}{
		{"token endpoint", "http://127.0.0.1:9090/tenant/", "http://127.0.0.1:8080/oauth2/token",
			[]string{"/.well-known/openid-configuration", "/tenant/.well-known/openid-configuration",
				"/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/tenant"},
			map[string]any{
				"issuer":                                "http://127.0.0.1:9090/tenant/",
				"jwks_uri":                              "http://127.0.0.1:9090/tenant/.well-known/jwks.json",
				"token_endpoint":                        "http://127.0.0.1:8080/oauth2/token",
				"response_types_supported":              []any{"none"},
				"grant_types_supported":                 []any{"urn:ietf:params:oauth:grant-type:token-exchange"},
				"token_endpoint_auth_methods_supported": []any{"none"},
				"subject_types_supported":               []any{"public"},
				"id_token_signing_alg_values_supported": []any{"ES256", "RS256"},
			}},
		{"no token endpoint", "http://127.0.0.1:9090", "",
			[]string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"},
			map[string]any{
				"issuer":                                "http://127.0.0.1:9090",
				"jwks_uri":                              "http://127.0.0.1:9090/.well-known/jwks.json",
				"response_types_supported":              []any{"none"},
				"grant_types_supported":                 []any{},
				"subject_types_supported":               []any{"public"},
				"id_token_signing_alg_values_supported": []any{"ES256", "RS256"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			admin := NewAdmin(AdminOptions{JWKS: []byte(testJWKS), Issuer: tt.issuer, TokenEndpoint: tt.tokenEndpoint,
				Algorithms: []string{"ES256", "RS256"}})
			for _, p := range tt.paths {
				resp, body := adminGet(t, admin, http.MethodGet, p)
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("GET %s = %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
				}
				var got map[string]any
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("GET %s =\n  %v\nwant\n  %v", p, got, tt.want)
				}
			}
		})
	}
}
