package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/exchange"
)

// A body that revokes nothing is a 400 that says what is missing, never a
// 200: empty, blank, a token that is not a JWT (unless an issuer
// introspects opaque tokens). The revoker is the real caching exchanger.
func TestAdminRevokeBodyRevokesSomething(t *testing.T) {
	jwt := rdJWT(`{"iss":"https://idp.example.com/","sub":"alice","jti":"j-1"}`, "sig")
	tests := []struct {
		name, ct, body string
		opaque         bool // an issuer introspects
		status         int
		bodyHas        string
	}{
		{"empty object", "application/json", `{}`, false, 400, "names nothing to revoke"},
		{"empty form", formType, ``, false, 400, "names nothing to revoke"},
		{"blank token", "application/json", `{"token":"   "}`, false, 400, `\"token\" is blank`},
		{"blank token, form", formType, "token=%20%09", false, 400, `\"token\" is blank`},
		{"blank sub", "application/json", `{"sub":" "}`, false, 400, `\"sub\" is blank`},
		{"blank sid", "application/json", `{"sid":"\n"}`, false, 400, `\"sid\" is blank`},
		{"not a JWT", "application/json", `{"token":"not-a-jwt"}`, false, 400, "not a JWT, and no issuer introspects"},
		{"JWT-shaped garbage", "application/json", `{"token":"eyJhbGciOiJFUzI1NiJ9.eyJ.c2ln"}`, false, 400, "not a JWT"},
		{"opaque, an issuer introspects", "application/json", `{"token":"not-a-jwt"}`, true, 200, `"revoked":"token"`},
		{"opaque with a space", "application/json", `{"token":"not a jwt"}`, true, 400, "b64token"},
		{"JWT", "application/json", `{"token":"` + jwt + `"}`, false, 200, `"revoked":"token"`},
		{"JWT with a pasted line end", "application/json", `{"token":"` + jwt + `\n"}`, false, 200, `"revoked":"token"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem, err := cache.NewMemory(10, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			rv, err := exchange.NewCaching(rdUpstream{}, exchange.CachingOptions{
				Cache: mem, Denylist: cache.NewDenylist(nil), OpaqueTokens: tc.opaque,
				Clock: func() time.Time { return time.Now() },
			})
			if err != nil {
				t.Fatal(err)
			}
			h := NewAdmin(AdminOptions{AdminToken: testAdminToken, Revoker: rv})
			resp, body := adminDo(t, h, http.MethodPost, "Bearer "+testAdminToken, tc.ct, tc.body)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.bodyHas) {
				t.Fatalf("status %d, body %s; want %d with %q", resp.StatusCode, body, tc.status, tc.bodyHas)
			}
			if tc.status == 400 && !strings.Contains(body, `"error":"invalid_request"`) {
				t.Errorf("body %s; want error invalid_request", body)
			}
			if strings.Contains(body, "not-a-jwt") || strings.Contains(body, jwt) {
				t.Errorf("the response echoes the token: %s", body)
			}
		})
	}
}
