package config

import "testing"

// TestValidateUnsafeCombinations: copy_claims that would change the
// exchanged token's meaning, a token endpoint on (a folded twin of) a route's
// path_prefix, and a Txn-Token trust domain that is a route audience.
func TestValidateUnsafeCombinations(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"copy cnf txn tctx", func(c *Config) { c.Exchange.Local.CopyClaims = []string{"sub", "cnf", "txn", "tctx"} }, []string{
			`exchange.local.copy_claims[1]: "cnf" would change what the exchanged token means`,
			`exchange.local.copy_claims[2]: "txn" would change what the exchanged token means`,
			`exchange.local.copy_claims[3]: "tctx" would change what the exchanged token means`,
		}},
		{"copy every set claim", func(c *Config) {
			c.Exchange.Local.CopyClaims = []string{"act", "iss", "aud", "exp", "iat", "nbf", "jti", "scope"}
		}, []string{
			`exchange.local.copy_claims[0]: "act" is a claim tokengate sets itself`,
			`exchange.local.copy_claims[1]: "iss" is a claim tokengate sets itself`,
			`exchange.local.copy_claims[2]: "aud" is a claim tokengate sets itself`,
			`exchange.local.copy_claims[3]: "exp" is a claim tokengate sets itself`,
			`exchange.local.copy_claims[4]: "iat" is a claim tokengate sets itself`,
			`exchange.local.copy_claims[5]: "nbf" is a claim tokengate sets itself`,
			`exchange.local.copy_claims[6]: "jti" is a claim tokengate sets itself`,
			`exchange.local.copy_claims[7]: "scope" is a claim tokengate sets itself`,
		}},
		{"route on the token endpoint, other case", func(c *Config) { c.Routes[1].PathPrefix = "/OAuth2/Token" },
			[]string{`routes[1].path_prefix: "/OAuth2/Token" is server.token_endpoint_path`}},
		{"route on the token endpoint, dot segment", func(c *Config) { c.Routes[1].PathPrefix = "/oauth2/./token" },
			[]string{
				`routes[1].path_prefix: "/oauth2/./token" has a "." segment`,
				`routes[1].path_prefix: "/oauth2/./token" is server.token_endpoint_path`,
			}},
		{"token endpoint with trailing slash on a route", func(c *Config) {
			c.Server.TokenEndpointPath = str("/inventory/")
		}, []string{`routes[1].path_prefix: "/inventory" is server.token_endpoint_path`}},
		{"token endpoint on a route, other case", func(c *Config) { c.Server.TokenEndpointPath = str("/Orders") },
			[]string{`routes[0].path_prefix: "/orders" is server.token_endpoint_path`}},
		{"token endpoint on a root route", func(c *Config) {
			c.Server.TokenEndpointPath = str("/")
			c.Routes[1].PathPrefix = "/"
		}, []string{`routes[1].path_prefix: "/" is server.token_endpoint_path`}},
		// Exact-match precedence, kept: the endpoint under a route's prefix
		// takes only its own path from that route.
		{"token endpoint under a route", func(c *Config) { c.Server.TokenEndpointPath = str("/orders/token") }, nil},
		{"token endpoint beside a route", func(c *Config) { c.Server.TokenEndpointPath = str("/orders-token") }, nil},
		{"trust domain is a route audience", func(c *Config) { c.TxnToken.TrustDomain = "https://inventory.example.com" },
			[]string{`txn_token.trust_domain: "https://inventory.example.com" is also routes[1].audience: a Txn-Token`}},
		{"trust domain is not a route audience", func(c *Config) { c.TxnToken.TrustDomain = "td.example" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseInDir(t, baseYAML)
			c.src = nil
			tt.change(c)
			assertProblems(t, c.Validate(), tt.want)
		})
	}
}
