package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidatePolicyKeys: scope_prefix, strip_scope_prefix, public_url, the
// token endpoint's path and reserved route names, each with its message.
func TestValidatePolicyKeys(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"namespaced prefix", func(c *Config) { c.Routes[0].ScopePrefix = "orders:"; c.Routes[0].StripScopePrefix = true }, nil},
		{"URL prefix", func(c *Config) { c.Routes[0].ScopePrefix = "https://orders.example.com/" }, nil},
		{"prefix without separator", func(c *Config) { c.Routes[0].ScopePrefix = "orders" },
			[]string{`routes[0].scope_prefix: "orders" does not end with a separator: write it like "orders:" or "https://orders.example.com/", so that it cannot also claim the scopes of another API ("ordersx:read")`}},
		{"prefix with space", func(c *Config) { c.Routes[0].ScopePrefix = "orders :" },
			[]string{`routes[0].scope_prefix: "orders :" contains whitespace`}},
		{"strip without prefix", func(c *Config) { c.Routes[1].StripScopePrefix = true },
			[]string{`routes[1].strip_scope_prefix: is true but scope_prefix is empty: set scope_prefix (like "orders:"), or remove strip_scope_prefix`}},
		{"route on the token endpoint", func(c *Config) { c.Routes[1].PathPrefix = "/oauth2/token" },
			[]string{`routes[1].path_prefix: "/oauth2/token" is server.token_endpoint_path: the token endpoint answers there`}},
		{"route on a moved token endpoint", func(c *Config) {
			c.Server.TokenEndpointPath = str("/token")
			c.Routes[1].PathPrefix = "/token"
		}, []string{`routes[1].path_prefix: "/token" is server.token_endpoint_path`}},
		{"route on a disabled token endpoint", func(c *Config) {
			c.Server.TokenEndpointPath = str("")
			c.Routes[1].PathPrefix = "/oauth2/token"
		}, nil},
		{"route above the token endpoint", func(c *Config) { c.Routes[1].PathPrefix = "/oauth2" }, nil},
		{"root route", func(c *Config) { c.Routes[1].PathPrefix = "/" }, nil},
		{"reserved names", func(c *Config) { c.Routes[0].Name = "token_endpoint"; c.Routes[1].Name = "_none" },
			[]string{`routes[0].name: "token_endpoint" is reserved`, `routes[1].name: "_none" is reserved`}},
		{"token endpoint dot segment", func(c *Config) { c.Server.TokenEndpointPath = str("/oauth2/../token") },
			[]string{`server.token_endpoint_path: "/oauth2/../token" is not a clean path`}},
		{"token endpoint double slash", func(c *Config) { c.Server.TokenEndpointPath = str("/oauth2//token") },
			[]string{`server.token_endpoint_path: "/oauth2//token" is not a clean path`}},
		{"public_url", func(c *Config) { c.Server.PublicURL = "https://api.example.com/gateway/" }, nil},
		{"public_url relative", func(c *Config) { c.Server.PublicURL = "api.example.com" },
			[]string{"server.public_url: is not an absolute URL: write it with its scheme, like https://api.example.com"}},
		{"public_url scheme", func(c *Config) { c.Server.PublicURL = "ftp://api.example.com" },
			[]string{`server.public_url: "ftp://api.example.com" is not an http(s) URL`}},
		{"public_url query", func(c *Config) { c.Server.PublicURL = "https://api.example.com/?a=b" },
			[]string{`server.public_url: "https://api.example.com/?a=b" has a query`}},
		{"public_url credentials", func(c *Config) { c.Server.PublicURL = "https://u:pw-secret@api.example.com" },
			[]string{`server.public_url: "https://u:xxxxx@api.example.com" holds a user name or password`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseInDir(t, baseYAML)
			c.src = nil
			tt.change(c)
			assertProblems(t, c.Validate(), tt.want, "pw-secret")
		})
	}
}

// TestPolicyKeysParse: the new keys decode from YAML.
func TestPolicyKeysParse(t *testing.T) {
	text := strings.Replace(baseYAML, "    scopes: [orders:read]\n",
		"    scopes: [orders:read]\n    scope_prefix: \"https://orders.example.com/\"\n    strip_scope_prefix: true\n", 1) +
		"server:\n  public_url: https://api.example.com\n"
	text = strings.Replace(text, "    jwks_uri: \"https://idp.example.com/jwks.json\"\n",
		"    jwks_uri: \"https://idp.example.com/jwks.json\"\n    permissions_as_scopes: true\n", 1)
	c := parseInDir(t, text)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := c.Routes[0]
	if r.ScopePrefix != "https://orders.example.com/" || !r.StripScopePrefix || c.Server.PublicURL != "https://api.example.com" ||
		!c.Issuers[0].PermissionsAsScopes {
		t.Fatalf("decoded %+v, %+v, %q", r, c.Issuers[0], c.Server.PublicURL)
	}
}

func TestTokenEndpointURL(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name string
		s    Server
		want string
	}{
		{"public_url", Server{PublicURL: "https://api.example.com", Listen: "0.0.0.0:8080"}, "https://api.example.com/oauth2/token"},
		{"public_url with path and slash", Server{PublicURL: "https://example.com/gw/", TokenEndpointPath: str("/token")}, "https://example.com/gw/token"},
		{"disabled", Server{PublicURL: "https://api.example.com", TokenEndpointPath: str("")}, ""},
		{"concrete listen", Server{Listen: "127.0.0.1:8080"}, "http://127.0.0.1:8080/oauth2/token"},
		{"concrete listen with tls", Server{Listen: "gw.internal:8443", TLS: &TLS{}}, "https://gw.internal:8443/oauth2/token"},
		{"ipv6 listen", Server{Listen: "[::1]:8080"}, "http://[::1]:8080/oauth2/token"},
		{"every interface", Server{Listen: ":8080"}, ""},
		{"unspecified v4", Server{Listen: "0.0.0.0:8080"}, ""},
		{"unspecified v6", Server{Listen: "[::]:8080"}, ""},
		{"random port", Server{Listen: "127.0.0.1:0"}, ""},
		{"not host:port", Server{Listen: "nonsense"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.TokenEndpointURL(); got != tt.want {
				t.Errorf("TokenEndpointURL() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPolicyDocsExamplesParse: every yaml example in docs/policy.md and
// docs/auth0.md decodes (its keys exist, its values have the right types).
// A fragment of the routes list is read as the routes list.
func TestPolicyDocsExamplesParse(t *testing.T) {
	for _, name := range []string{"policy.md", "auth0.md"} {
		doc, err := os.ReadFile(filepath.Join("..", "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(doc), "```yaml\n")[1:]
		if len(blocks) < 2 {
			t.Fatalf("%s: found %d yaml examples", name, len(blocks))
		}
		for i, b := range blocks {
			text, _, _ := strings.Cut(b, "```")
			if strings.HasPrefix(text, "  - ") {
				text = "routes:\n" + text
			}
			if _, err := Parse([]byte(text), t.TempDir(), nil); err != nil {
				t.Errorf("%s example %d:\n%s\n%v", name, i, text, err)
			}
		}
	}
}
