package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// Challenges of the policy failures of matrixRoute, exactly as sent.
const (
	challengeClient = `Bearer error="insufficient_scope"`
	challengeScope  = `Bearer error="insufficient_scope", scope="orders:read"`
	challengeACR    = `Bearer error="insufficient_user_authentication", error_description="the authentication context class (acr) is not one this route accepts", acr_values="gold platinum", max_age="300"`
	challengeStale  = `Bearer error="insufficient_user_authentication", error_description="the authentication is older than this route's max_age", acr_values="gold platinum", max_age="300"`
	challengeNoAge  = `Bearer error="insufficient_user_authentication", error_description="the token has no auth_time and this route limits the authentication age", acr_values="gold platinum", max_age="300"`
)

// matrixRoute has every rule: required_scopes, allowed_clients, acr_values
// and max_age, and owns its scopes the way mode says.
func matrixRoute(mode, upstream string) config.Route {
	r := testRoute(mode, "/"+mode, upstream)
	r.Audience = "https://orders-" + mode + ".example.com"
	r.Scopes = []string{"orders:read", "orders:write"}
	switch mode {
	case "keep":
		r.Scopes = nil
		r.ScopePrefix = "orders:"
	case "strip":
		r.Scopes = nil
		r.ScopePrefix = "orders:"
		r.StripScopePrefix = true
	}
	r.RequiredScopes = []string{"orders:read"}
	r.AllowedClients = []string{"web", "m2m-client"}
	r.ACRValues = []string{"gold", "platinum"}
	r.MaxAge = config.Duration(5 * time.Minute)
	return r
}

// TestPolicyMatrix crosses every rule: scope ownership (a scopes list, a
// prefix kept, a prefix stripped) × the required scope present or not × the
// client allowed or not × acr accepted or not × auth_time fresh, stale or
// absent. Rules are checked client, then scopes, then authentication; each
// failure is checked for its status, its exact challenge, its JSON error,
// and that neither the exchanger nor the backend saw anything. Each success
// is checked for the exact scopes the exchanged token carries.
func TestPolicyMatrix(t *testing.T) {
	be := newBackend(t, nil)
	modes := []string{"list", "keep", "strip"}
	var routes []config.Route
	for _, m := range modes {
		routes = append(routes, matrixRoute(m, be.URL))
	}
	env := newEnv(t, routes, nil)

	// Scopes the exchanged token carries on success, by mode and whether the
	// umbrella token holds orders:read.
	wantScopes := map[string][]string{
		"list":  {"orders:read", "orders:write"},
		"keep":  {"orders:admin", "orders:read", "orders:write"},
		"strip": {"admin", "read", "write"},
	}
	type dims struct {
		mode        string
		hasRequired bool
		client      string
		acr         string
		authTime    string // fresh, stale, absent
	}
	var cases []dims
	for _, m := range modes {
		for _, req := range []bool{true, false} {
			for _, client := range []string{"web", "m2m-client", "evil"} {
				for _, acr := range []string{"gold", "silver"} {
					for _, at := range []string{"fresh", "stale", "absent"} {
						cases = append(cases, dims{m, req, client, acr, at})
					}
				}
			}
		}
	}
	for i, d := range cases {
		name := fmt.Sprintf("%s/required=%t/client=%s/acr=%s/auth_time=%s", d.mode, d.hasRequired, d.client, d.acr, d.authTime)
		t.Run(name, func(t *testing.T) {
			tok := fmt.Sprintf("tok-matrix-%03d", i)
			env.verifier.add(tok, func(c *exchange.Claims) {
				c.Scopes = []string{"openid", "orders:write", "orders:admin", "billing:read", "orders:", "orders:write"}
				if d.hasRequired {
					c.Scopes = append(c.Scopes, "orders:read")
				}
				c.ClientID = d.client
				if d.client == "m2m-client" { // Auth0 M2M: azp only, sub CLIENT@clients
					c.ClientID, c.AZP, c.Subject = "", "m2m-client", "m2m-client@clients"
				}
				c.ACR = d.acr
				switch d.authTime {
				case "fresh":
					c.AuthTime = testNow.Add(-4 * time.Minute)
				case "stale":
					c.AuthTime = testNow.Add(-6 * time.Minute)
				default:
					c.AuthTime = time.Time{}
				}
			})
			// The expected outcome, in the documented order of the rules.
			status, challenge, code := http.StatusOK, "", ""
			switch {
			case d.client == "evil":
				status, challenge, code = 403, challengeClient, "unauthorized_client"
			case !d.hasRequired:
				status, challenge, code = 403, challengeScope, "insufficient_scope"
			case d.acr != "gold":
				status, challenge, code = 401, challengeACR, "insufficient_user_authentication"
			case d.authTime == "stale":
				status, challenge, code = 401, challengeStale, "insufficient_user_authentication"
			case d.authTime == "absent":
				status, challenge, code = 401, challengeNoAge, "insufficient_user_authentication"
			}

			beforeBackend := len(be.requests())
			beforeEx, _ := env.exch.snapshot()
			resp, body := env.do(t, http.MethodGet, "/"+d.mode+"/items", bearer(tok))
			if resp.StatusCode != status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != challenge {
				t.Errorf("WWW-Authenticate:\n got  %s\n want %s", got, challenge)
			}
			afterEx, _ := env.exch.snapshot()
			if status != http.StatusOK {
				if e := decodeError(t, body); e.Error != code || e.Description == "" {
					t.Errorf("body = %+v, want error %q with a description", e, code)
				}
				if n := len(be.requests()) - beforeBackend; n != 0 {
					t.Errorf("the backend received %d requests for a refused token", n)
				}
				if len(afterEx) != len(beforeEx) {
					t.Errorf("a refused token was exchanged")
				}
				return
			}
			if len(afterEx) != len(beforeEx)+1 {
				t.Fatalf("exchanges %d → %d, want one", len(beforeEx), len(afterEx))
			}
			got := afterEx[len(afterEx)-1]
			if got.Audience != "https://orders-"+d.mode+".example.com" || !slices.Equal(got.Scopes, wantScopes[d.mode]) {
				t.Errorf("exchanged for %s with scopes %q, want %q", got.Audience, got.Scopes, wantScopes[d.mode])
			}
			reqs := be.requests()
			if n := len(reqs) - beforeBackend; n != 1 {
				t.Fatalf("backend received %d requests, want 1", n)
			}
			if auth := reqs[len(reqs)-1].Header.Get("Authorization"); auth != "Bearer "+exchangedToken(got.Audience, got.Scopes) {
				t.Errorf("backend Authorization = %q", auth)
			}
		})
	}
}

// TestDownscopePrefix: scopes, scope_prefix and strip_scope_prefix, alone
// and together, in Auth0's two namespaced styles.
func TestDownscopePrefix(t *testing.T) {
	tests := []struct {
		name   string
		route  config.Route
		in     []string
		want   []string
		policy []string // required_scopes: checked on the umbrella scopes, prefix included
	}{
		{name: "list only", route: config.Route{Scopes: []string{"orders:read"}},
			in: []string{"orders:read", "orders:write"}, want: []string{"orders:read"}},
		{name: "colon prefix kept", route: config.Route{ScopePrefix: "orders:"},
			in: []string{"orders:write", "billing:read", "orders:read", "ordersx:read", "orders:"}, want: []string{"orders:read", "orders:write"}},
		{name: "colon prefix stripped", route: config.Route{ScopePrefix: "orders:", StripScopePrefix: true},
			in: []string{"orders:write", "billing:read", "orders:read", "read"}, want: []string{"read", "write"}},
		{name: "URL prefix kept", route: config.Route{ScopePrefix: "https://orders.example.com/"},
			in:   []string{"https://orders.example.com/read", "https://billing.example.com/read", "https://orders.example.com"},
			want: []string{"https://orders.example.com/read"}},
		{name: "URL prefix stripped", route: config.Route{ScopePrefix: "https://orders.example.com/", StripScopePrefix: true},
			in:   []string{"https://orders.example.com/read", "https://orders.example.com/write:all", "openid"},
			want: []string{"read", "write:all"}},
		{name: "prefix and list together", route: config.Route{Scopes: []string{"legacy_orders"}, ScopePrefix: "orders:", StripScopePrefix: true},
			in: []string{"legacy_orders", "orders:read", "other"}, want: []string{"legacy_orders", "read"}},
		{name: "prefix rule wins over list when stripping", route: config.Route{Scopes: []string{"orders:read"}, ScopePrefix: "orders:", StripScopePrefix: true},
			in: []string{"orders:read"}, want: []string{"read"}},
		{name: "stripped collides with listed: one", route: config.Route{Scopes: []string{"read"}, ScopePrefix: "orders:", StripScopePrefix: true},
			in: []string{"orders:read", "read"}, want: []string{"read"}},
		{name: "strip without prefix is ignored", route: config.Route{Scopes: []string{"orders:read"}, StripScopePrefix: true},
			in: []string{"orders:read"}, want: []string{"orders:read"}},
		{name: "nothing owned", route: config.Route{ScopePrefix: "orders:"}, in: []string{"billing:read"}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.route.Name, tc.route.PathPrefix, tc.route.Upstream, tc.route.Audience = "r", "/r", "http://127.0.0.1:1", "a"
			routes, err := buildRoutes([]config.Route{tc.route})
			if err != nil {
				t.Fatal(err)
			}
			if got := routes[0].policy.downscope(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("downscope(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestRequiredScopesWithPrefix: required_scopes name scopes as the
// umbrella token writes them, whatever strip_scope_prefix does to the
// exchanged token, and the challenge names them that way too (it is what
// the client must ask its identity provider for).
func TestRequiredScopesWithPrefix(t *testing.T) {
	be := newBackend(t, nil)
	r := testRoute("orders", "/orders", be.URL)
	r.Scopes, r.ScopePrefix, r.StripScopePrefix = nil, "https://orders.example.com/", true
	r.RequiredScopes = []string{"https://orders.example.com/read"}
	env := newEnv(t, []config.Route{r}, nil)
	env.verifier.add("tok-has-read-0001", func(c *exchange.Claims) {
		c.Scopes = []string{"https://orders.example.com/read", "https://orders.example.com/write"}
	})
	env.verifier.add("tok-stripped-0001", func(c *exchange.Claims) { c.Scopes = []string{"read", "write"} })

	resp, body := env.do(t, http.MethodGet, "/orders", bearer("tok-has-read-0001"))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	reqs, _ := env.exch.snapshot()
	if got := reqs[len(reqs)-1].Scopes; !slices.Equal(got, []string{"read", "write"}) {
		t.Errorf("exchanged scopes = %q, want the stripped names", got)
	}

	// The stripped name in the umbrella token satisfies nothing: it is not
	// the scope the policy names, nor one the route owns.
	resp, _ = env.do(t, http.MethodGet, "/orders", bearer("tok-stripped-0001"))
	want := `Bearer error="insufficient_scope", scope="https://orders.example.com/read"`
	if resp.StatusCode != 403 || resp.Header.Get("WWW-Authenticate") != want {
		t.Errorf("got %d %q, want 403 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	if n := len(be.requests()); n != 1 {
		t.Errorf("backend received %d requests, want 1", n)
	}
}

// TestStepUpRoundTrip is the RFC 9470 dance at the edge: a token without the
// required authentication is refused with a challenge naming acr_values and
// max_age; the client authenticates again and its new token, whose acr and
// auth_time satisfy the challenge, is accepted.
func TestStepUpRoundTrip(t *testing.T) {
	be := newBackend(t, nil)
	r := testRoute("payments", "/payments", be.URL)
	r.ACRValues = []string{"urn:example:mfa"}
	r.MaxAge = config.Duration(10 * time.Minute)
	env := newEnv(t, []config.Route{r}, nil)
	env.verifier.add("tok-password-only", func(c *exchange.Claims) {
		c.ACR, c.AuthTime = "urn:example:pwd", testNow.Add(-2*time.Hour)
	})

	resp, _ := env.do(t, http.MethodGet, "/payments/1", bearer("tok-password-only"))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
	params := parseChallenge(t, resp.Header.Get("WWW-Authenticate"))
	if params["error"] != "insufficient_user_authentication" || params["acr_values"] != "urn:example:mfa" || params["max_age"] != "600" {
		t.Fatalf("challenge = %v", params)
	}
	if len(be.requests()) != 0 {
		t.Fatal("the refused request reached the backend")
	}

	// The client sends the user to the identity provider with exactly what
	// the challenge asked for; the provider issues a new token.
	env.verifier.add("tok-after-step-up", func(c *exchange.Claims) {
		c.ACR = strings.Fields(params["acr_values"])[0]
		c.AuthTime = testNow.Add(-5 * time.Second)
	})
	resp, body := env.do(t, http.MethodGet, "/payments/1", bearer("tok-after-step-up"))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("after step-up: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	if len(be.requests()) != 1 {
		t.Fatal("the stepped-up request did not reach the backend")
	}
}

// parseChallenge reads the auth-params of a Bearer challenge (quoted values
// with \" escapes), as a client would.
func parseChallenge(t *testing.T, h string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		t.Fatalf("not a Bearer challenge: %q", h)
	}
	out := map[string]string{}
	for rest != "" {
		name, after, ok := strings.Cut(rest, `="`)
		if !ok {
			t.Fatalf("bad challenge %q", h)
		}
		var val strings.Builder
		i := 0
		for ; i < len(after) && after[i] != '"'; i++ {
			if after[i] == '\\' {
				i++
			}
			val.WriteByte(after[i])
		}
		out[strings.TrimSpace(name)] = val.String()
		rest = strings.TrimPrefix(strings.TrimPrefix(after[i+1:], ","), " ")
	}
	return out
}
