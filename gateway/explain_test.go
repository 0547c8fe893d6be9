package gateway

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/tokengate/tokengate/exchange"
)

// TestExplainAgreesWithRequests: for several tokens, Explain's decision on
// every route and audience is exactly what a real request gets, and it
// exchanges nothing.
func TestExplainAgreesWithRequests(t *testing.T) {
	env, _ := tokenEnv(t, nil)
	env.verifier.add("tok-gold-explain-1", func(c *exchange.Claims) {
		c.ACR = "gold"
		c.Scopes = []string{"orders:read", "reports:read", "reports:admin"}
	})
	env.verifier.add("tok-evil-explain-1", func(c *exchange.Claims) { c.ClientID = "evil" })
	for _, tok := range []string{umbrella, "tok-gold-explain-1", "tok-evil-explain-1", "tok-unknown-explain"} {
		t.Run(tok, func(t *testing.T) {
			before, _ := env.exch.snapshot()
			ex := env.gw.Explain(context.Background(), tok)
			if after, _ := env.exch.snapshot(); len(after) != len(before) {
				t.Fatal("Explain exchanged a token")
			}
			if len(ex.Routes) != 4 || ex.TokenEndpointPath != tokenPath || len(ex.TokenEndpoint) != 3 {
				t.Fatalf("explanation: %d routes, endpoint %q with %d audiences", len(ex.Routes), ex.TokenEndpointPath, len(ex.TokenEndpoint))
			}
			for _, d := range ex.Routes {
				resp, _ := env.do(t, http.MethodGet, d.PathPrefix+"/x", bearer(tok))
				if resp.StatusCode != d.Status || resp.Header.Get("WWW-Authenticate") != d.Challenge {
					t.Errorf("route %v: explained %d %q, request got %d %q", d.Routes, d.Status, d.Challenge,
						resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
				}
				if d.Allowed {
					reqs, _ := env.exch.snapshot()
					if got := reqs[len(reqs)-1]; got.Audience != d.Request.Audience || !slices.Equal(got.Scopes, d.Request.Scopes) {
						t.Errorf("route %v: explained %q, exchanged %q", d.Routes, d.Request.Scopes, got.Scopes)
					}
				}
			}
			for _, d := range ex.TokenEndpoint {
				resp, body := env.post(t, tokenPath, formType, exchangeForm(tok, d.Audience).Encode())
				if resp.StatusCode != d.Status {
					t.Errorf("audience %s: explained %d, endpoint answered %d %s", d.Audience, d.Status, resp.StatusCode, body)
				}
				if !d.Allowed && decodeError(t, body).Error != d.Error {
					t.Errorf("audience %s: explained %q, endpoint answered %s", d.Audience, d.Error, body)
				}
			}
		})
	}
	// The reports audience lists both of its routes.
	ex := env.gw.Explain(context.Background(), umbrella)
	if got := ex.TokenEndpoint[2].Routes; !slices.Equal(got, []string{"reports-read", "reports-admin"}) {
		t.Errorf("reports audience routes = %q", got)
	}
}
