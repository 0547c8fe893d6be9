package gateway

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

func TestPolicy(t *testing.T) {
	now := testNow
	claims := func(edit func(*exchange.Claims)) exchange.Claims {
		c := exchange.Claims{
			ClientID: "web",
			Scopes:   []string{"a", "b", "c"},
			ACR:      "silver",
			AuthTime: now.Add(-2 * time.Minute),
		}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	tests := []struct {
		name        string
		route       config.Route
		claims      exchange.Claims
		wantKind    policyKind // 0 = allowed
		wantMissing []string
		wantACR     string
		wantMaxAge  time.Duration
	}{
		{name: "no policy", claims: claims(nil)},
		{name: "required scopes present", route: config.Route{RequiredScopes: []string{"a", "c"}}, claims: claims(nil)},
		{name: "required scopes missing", route: config.Route{RequiredScopes: []string{"a", "x", "y"}}, claims: claims(nil),
			wantKind: policyScope, wantMissing: []string{"x", "y"}},
		{name: "no scopes at all", route: config.Route{RequiredScopes: []string{"a"}}, claims: claims(func(c *exchange.Claims) { c.Scopes = nil }),
			wantKind: policyScope, wantMissing: []string{"a"}},
		{name: "client via client_id", route: config.Route{AllowedClients: []string{"cli", "web"}}, claims: claims(nil)},
		{name: "client via azp", route: config.Route{AllowedClients: []string{"spa"}},
			claims: claims(func(c *exchange.Claims) { c.ClientID = ""; c.AZP = "spa" })},
		{name: "client_id wins over azp", route: config.Route{AllowedClients: []string{"spa"}},
			claims: claims(func(c *exchange.Claims) { c.AZP = "spa" }), wantKind: policyClient},
		{name: "client not allowed", route: config.Route{AllowedClients: []string{"cli"}}, claims: claims(nil), wantKind: policyClient},
		{name: "no client", route: config.Route{AllowedClients: []string{"cli"}}, claims: claims(func(c *exchange.Claims) { c.ClientID = "" }), wantKind: policyClient},
		{name: "client checked before scopes", route: config.Route{AllowedClients: []string{"cli"}, RequiredScopes: []string{"x"}}, claims: claims(nil), wantKind: policyClient},
		{name: "acr accepted", route: config.Route{ACRValues: []string{"gold", "silver"}}, claims: claims(nil)},
		{name: "acr refused", route: config.Route{ACRValues: []string{"gold"}}, claims: claims(nil), wantKind: policyAuthentication, wantACR: "gold"},
		{name: "acr absent", route: config.Route{ACRValues: []string{"gold"}}, claims: claims(func(c *exchange.Claims) { c.ACR = "" }), wantKind: policyAuthentication, wantACR: "gold"},
		{name: "max_age fresh", route: config.Route{MaxAge: config.Duration(5 * time.Minute)}, claims: claims(nil)},
		{name: "max_age at the limit", route: config.Route{MaxAge: config.Duration(2 * time.Minute)}, claims: claims(nil)},
		{name: "max_age exceeded", route: config.Route{MaxAge: config.Duration(time.Minute)}, claims: claims(nil),
			wantKind: policyAuthentication, wantMaxAge: time.Minute},
		{name: "max_age without auth_time", route: config.Route{MaxAge: config.Duration(time.Hour)}, claims: claims(func(c *exchange.Claims) { c.AuthTime = time.Time{} }),
			wantKind: policyAuthentication, wantMaxAge: time.Hour},
		{name: "no max_age ignores auth_time", claims: claims(func(c *exchange.Claims) { c.AuthTime = time.Time{} })},
		{name: "acr ok, age not: both attributes", route: config.Route{ACRValues: []string{"silver"}, MaxAge: config.Duration(time.Minute)}, claims: claims(nil),
			wantKind: policyAuthentication, wantACR: "silver", wantMaxAge: time.Minute},
		{name: "scopes checked before authentication", route: config.Route{RequiredScopes: []string{"x"}, ACRValues: []string{"gold"}}, claims: claims(nil),
			wantKind: policyScope, wantMissing: []string{"x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.route.Name = "r"
			p := newPolicy(tc.route)
			err := p.check(&tc.claims, now)
			if tc.wantKind == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var pe *policyError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *policyError", err)
			}
			if pe.kind != tc.wantKind || !slices.Equal(pe.missingScopes, tc.wantMissing) || pe.acrValues != tc.wantACR || pe.maxAge != tc.wantMaxAge {
				t.Errorf("got kind %d missing %q acr %q max_age %v", pe.kind, pe.missingScopes, pe.acrValues, pe.maxAge)
			}
			if resp := errorResponse(err); resp.reason != reasonPolicy {
				t.Errorf("reason = %q, want policy", resp.reason)
			}
		})
	}
}

func TestDownscope(t *testing.T) {
	rt := &route{policy: routePolicy{scopes: map[string]struct{}{"a": {}, "b": {}, "c": {}}}}
	tests := []struct {
		in, want []string
	}{
		{in: nil, want: nil},
		{in: []string{"x"}, want: nil},
		{in: []string{"c", "x", "a", "c", "a"}, want: []string{"a", "c"}},
		{in: []string{"b"}, want: []string{"b"}},
	}
	for _, tc := range tests {
		if got := rt.policy.downscope(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("downscope(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":           `"plain"`,
		`say "hi"`:        `"say \"hi\""`,
		`back\slash`:      `"back\\slash"`,
		"line\nbreak\x7f": `"line break "`,
		"é":               `"  "`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := quote(string(make([]byte, 1000))); len(got) != 258 {
		t.Errorf("quote does not bound the length: %d", len(got))
	}
}
