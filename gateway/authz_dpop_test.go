package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestAuthzDPoPHTU: through forward-auth the htu is never built from
// tokengate's own listener (the client called the ingress): a proof for the
// listener's URL is refused; with server.public_url the proof names that,
// and with a trusted ingress its X-Forwarded-Proto/-Host.
func TestAuthzDPoPHTU(t *testing.T) {
	key := newDPoPKey(t)
	for _, tc := range []struct {
		name      string
		publicURL string
		trusted   bool
		htu       func(authzURL string) string
		want      int
	}{
		{"the listener's own URL is not the client's", "", false,
			// The scheme the client used (X-Forwarded-Proto), the listener's address.
			func(u string) string { return strings.Replace(u, "http://", "https://", 1) + "/orders/1" }, 401},
		{"public_url", "https://api.example.com", false,
			func(string) string { return "https://api.example.com/orders/1" }, 200},
		{"a trusted ingress's X-Forwarded-Proto and -Host", "", true,
			func(string) string { return "https://shop.example.com/orders/1" }, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := dpopEnv(t, key, func(o *Options) {
				o.Config.Server.PublicURL = tc.publicURL
				if tc.trusted {
					o.Config.Server.TrustedProxies = []string{"127.0.0.1/32"}
				}
			})
			authz := httptest.NewServer(http.HandlerFunc(env.gw.ServeAuthz))
			t.Cleanup(authz.Close)
			u, _ := url.Parse(authz.URL)
			htu := tc.htu("http://" + u.Host)
			h := http.Header{
				"Authorization":     {"DPoP " + tokBound},
				"Dpop":              {key.proof(t, "GET", htu, tokBound, nil)},
				"X-Original-Uri":    {"/orders/1"},
				"X-Forwarded-Proto": {"https"},
				"X-Forwarded-Host":  {"shop.example.com"},
			}
			resp, body := rawDo(t, authz.URL, http.MethodGet, "/orders/1", h)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
		})
	}
}
