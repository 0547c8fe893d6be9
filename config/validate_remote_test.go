package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateRemoteBase(t *testing.T) {
	c := parseInDir(t, remoteConfig(""))
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	r := c.Exchange.Remote
	wantEqual(t, r.AuthMethod, AuthClientSecretBasic)
	wantEqual(t, r.SubjectTokenType, TokenTypeAccessToken)
	wantEqual(t, r.RequestedTokenType, TokenTypeAccessToken)
	wantEqual(t, r.Timeout.D(), DefaultRemoteTimeout)
	wantEqual(t, r.ClientSecret, testEnv["STS_SECRET"])
	if !r.Resource.IsZero() {
		t.Errorf("resource defaults to %+v, want never", r.Resource)
	}
}

// remoteConfig is a valid remote-mode configuration plus extra lines under
// exchange.remote.
func remoteConfig(extra string) string {
	return `
issuers:
  - issuer: "https://idp.example.com/"
    jwks_uri: "https://idp.example.com/jwks.json"
exchange:
  mode: remote
  remote:
    token_endpoint: "https://sts.example.com/oauth2/token"
    client_id: tokengate
    client_secret: ${STS_SECRET}
` + extra + `routes:
  - name: orders
    path_prefix: /orders
    upstream: "http://127.0.0.1:9001"
    audience: "https://orders.example.com"
  - name: inventory
    path_prefix: /inventory
    upstream: "http://127.0.0.1:9002"
    audience: "https://inventory.example.com"
`
}

// TestValidateRemote changes one thing in a valid remote configuration and
// expects exactly the listed problems (by prefix), in order.
func TestValidateRemote(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		{"valid", func(*Config) {}, nil},
		{"both endpoint and issuer", func(c *Config) { c.Exchange.Remote.Issuer = "https://sts.example.com" },
			[]string{"exchange.remote.token_endpoint: is set together with issuer: keep one"}},
		{"issuer only", func(c *Config) {
			c.Exchange.Remote.TokenEndpoint = ""
			c.Exchange.Remote.Issuer = "https://sts.example.com/realms/x"
		}, nil},
		{"issuer with query", func(c *Config) {
			c.Exchange.Remote.TokenEndpoint = ""
			c.Exchange.Remote.Issuer = "https://sts.example.com?x=1"
		}, []string{`exchange.remote.issuer: "https://sts.example.com?x=1" has a query`}},
		{"token endpoint with query", func(c *Config) { c.Exchange.Remote.TokenEndpoint = "https://sts.example.com/token?tenant=a" }, nil},
		{"token endpoint with fragment", func(c *Config) { c.Exchange.Remote.TokenEndpoint = "https://sts.example.com/token#x" },
			[]string{`exchange.remote.token_endpoint: "https://sts.example.com/token#x" has a fragment`}},
		{"token endpoint not a URL", func(c *Config) { c.Exchange.Remote.TokenEndpoint = "sts.example.com/token" },
			[]string{"exchange.remote.token_endpoint: is not an absolute URL"}},
		{"token endpoint with password", func(c *Config) { c.Exchange.Remote.TokenEndpoint = "https://u:pw-secret@sts.example.com/token" },
			[]string{`exchange.remote.token_endpoint: "https://u:xxxxx@sts.example.com/token" holds a user name or password`}},
		{"plain http", func(c *Config) { c.Exchange.Remote.TokenEndpoint = "http://sts.example.com/token" },
			[]string{`exchange.remote.token_endpoint: "http://sts.example.com/token" uses plain http: the client credentials and every umbrella token`}},
		{"plain http allowed", func(c *Config) {
			c.Exchange.Remote.TokenEndpoint = "http://sts.internal/token"
			c.Exchange.Remote.AllowInsecureHTTP = true
		}, nil},
		{"plain http on loopback", func(c *Config) { c.Exchange.Remote.TokenEndpoint = "http://127.0.0.1:8000/token" }, nil},
		{"no client id", func(c *Config) { c.Exchange.Remote.ClientID = "" },
			[]string{"exchange.remote.client_id: is empty"}},
		{"client id with newline", func(c *Config) { c.Exchange.Remote.ClientID = "a\nb" },
			[]string{"exchange.remote.client_id: contains a control character"}},
		{"auth method empty", func(c *Config) { c.Exchange.Remote.AuthMethod = "" },
			[]string{"exchange.remote.auth_method: is empty: use client_secret_basic, client_secret_post, private_key_jwt"}},
		{"auth method unknown", func(c *Config) { c.Exchange.Remote.AuthMethod = "tls_client_auth" },
			[]string{`exchange.remote.auth_method: "tls_client_auth" is not a client authentication method`}},
		{"post without secret", func(c *Config) {
			c.Exchange.Remote.AuthMethod = AuthClientSecretPost
			c.Exchange.Remote.ClientSecret = ""
		}, []string{"exchange.remote.client_secret: is empty: auth_method client_secret_post sends the client secret"}},
		{"secret method with key and audience", func(c *Config) {
			c.Exchange.Remote.PrivateKey = SigningKey{File: "k.pem", Alg: "ES256"}
			c.Exchange.Remote.AssertionAudience = "https://sts.example.com"
		}, []string{
			"exchange.remote.private_key: is set, but auth_method is client_secret_basic, which does not use it",
			"exchange.remote.assertion_audience: is only used with auth_method: private_key_jwt",
		}},
		{"private_key_jwt valid", func(c *Config) {
			c.Exchange.Remote.AuthMethod = AuthPrivateKeyJWT
			c.Exchange.Remote.ClientSecret = ""
			c.Exchange.Remote.PrivateKey = SigningKey{File: filepath.Join(c.Dir, "keys/es256.pem"), Alg: "ES256"}
			c.Exchange.Remote.AssertionAudience = "https://sts.example.com"
		}, nil},
		{"private_key_jwt without key, with secret", func(c *Config) {
			c.Exchange.Remote.AuthMethod = AuthPrivateKeyJWT
		}, []string{
			"exchange.remote.client_secret: is set, but auth_method is private_key_jwt, which does not send it: remove it",
			"exchange.remote.private_key: is not set: auth_method private_key_jwt signs client assertions with a private key",
		}},
		{"private_key_jwt key problems", func(c *Config) {
			c.Exchange.Remote.AuthMethod = AuthPrivateKeyJWT
			c.Exchange.Remote.ClientSecret = ""
			c.Exchange.Remote.PrivateKey = SigningKey{File: filepath.Join(c.Dir, "keys/missing.pem"), Alg: "HS256"}
			c.Exchange.Remote.AssertionAudience = "a b"
		}, []string{
			"exchange.remote.private_key.file: file \"keys/missing.pem\" does not exist: make a key with `tokengate keys generate --alg ES256 --out keys/missing.pem`",
			`exchange.remote.private_key.alg: "HS256" is not a signing algorithm`,
			"exchange.remote.assertion_audience: contains whitespace",
		}},
		{"private_key_jwt key without alg", func(c *Config) {
			c.Exchange.Remote.AuthMethod = AuthPrivateKeyJWT
			c.Exchange.Remote.ClientSecret = ""
			c.Exchange.Remote.PrivateKey = SigningKey{File: filepath.Join(c.Dir, "keys/es256.pem")}
		}, []string{"exchange.remote.private_key.alg: is empty"}},
		{"token types", func(c *Config) {
			c.Exchange.Remote.SubjectTokenType = "urn:ietf:params:oauth:token-type:id_token"
			c.Exchange.Remote.RequestedTokenType = ""
		}, []string{
			`exchange.remote.subject_token_type: "urn:ietf:params:oauth:token-type:id_token" is not a token type tokengate can use`,
			"exchange.remote.requested_token_type: is empty",
		}},
		{"jwt token types", func(c *Config) {
			c.Exchange.Remote.SubjectTokenType = TokenTypeJWT
			c.Exchange.Remote.RequestedTokenType = TokenTypeJWT
		}, nil},
		{"timeout zero", func(c *Config) { c.Exchange.Remote.Timeout = 0 },
			[]string{"exchange.remote.timeout: 0s is not positive"}},
		{"timeout long", func(c *Config) { c.Exchange.Remote.Timeout = Duration(2 * time.Minute) },
			[]string{"exchange.remote.timeout: 2m0s is too long"}},
		{"resource true", func(c *Config) { c.Exchange.Remote.Resource = Resource{All: true} }, nil},
		{"resource true with a non-URI audience", func(c *Config) {
			c.Exchange.Remote.Resource = Resource{All: true}
			c.Routes[1].Audience = "inventory-api"
		}, []string{`exchange.remote.resource: is true, but routes[1].audience "inventory-api" is not an absolute URI`}},
		{"resource list", func(c *Config) {
			c.Exchange.Remote.Resource = Resource{Audiences: []string{"https://orders.example.com"}}
			c.Routes[1].Audience = "inventory-api"
		}, nil},
		{"resource list problems", func(c *Config) {
			c.Exchange.Remote.Resource = Resource{Audiences: []string{"", "inventory-api", "https://billing.example.com", "https://x#f"}}
			c.Routes[1].Audience = "inventory-api"
		}, []string{
			"exchange.remote.resource[0]: is empty",
			`exchange.remote.resource[1]: "inventory-api" is not an absolute URI without a fragment`,
			`exchange.remote.resource[2]: "https://billing.example.com" is not the audience of any route`,
			`exchange.remote.resource[3]: "https://x#f" is not an absolute URI`,
		}},
		{"local mode ignores remote", func(c *Config) {
			c.Exchange.Mode = ModeLocal
			c.Exchange.Remote = Remote{}
			c.Exchange.Local.SigningKeys = []SigningKey{{File: filepath.Join(c.Dir, "keys/es256.pem"), Alg: "ES256"}}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseInDir(t, remoteConfig(""))
			c.src = nil // problems in the order found
			tt.change(c)
			assertProblems(t, c.Validate(), tt.want, "pw-secret", testEnv["STS_SECRET"])
		})
	}
}

// TestRemoteResourceYAML: exchange.remote.resource is true, false or a list,
// and anything else names the key and the three forms.
func TestRemoteResourceYAML(t *testing.T) {
	tests := []struct {
		yaml    string
		want    Resource
		problem string
	}{
		{"", Resource{}, ""},
		{"    resource: false\n", Resource{}, ""},
		{"    resource: true\n", Resource{All: true}, ""},
		{"    resource: [\"https://orders.example.com\"]\n", Resource{Audiences: []string{"https://orders.example.com"}}, ""},
		{"    resource:\n      - https://orders.example.com\n      - https://inventory.example.com\n",
			Resource{Audiences: []string{"https://orders.example.com", "https://inventory.example.com"}}, ""},
		{"    resource: yes-please\n", Resource{}, `exchange.remote.resource: "yes-please" is not true, false or a list: write true`},
		{"    resource: ${N}\n", Resource{}, "exchange.remote.resource: the value from the environment is not true, false or a list"},
		{"    resource: {a: b}\n", Resource{}, "exchange.remote.resource: must be true, false or a list, not a mapping"},
		{"    resource: [[a]]\n", Resource{}, "exchange.remote.resource[0]: must be a single value, not a list"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSpace(tt.yaml), func(t *testing.T) {
			c, err := Parse([]byte(remoteConfig(tt.yaml)), t.TempDir(), lookupTestEnv)
			if tt.problem != "" {
				if err == nil {
					t.Fatalf("no problem; want %q", tt.problem)
				}
				if len(missing(messages(t, err), tt.problem)) > 0 {
					t.Fatalf("problems %q lack %q", messages(t, err), tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := c.Exchange.Remote.Resource
			if r.All != tt.want.All || strings.Join(r.Audiences, ",") != strings.Join(tt.want.Audiences, ",") {
				t.Fatalf("resource = %+v, want %+v", r, tt.want)
			}
		})
	}
	r := Resource{Audiences: []string{"a"}}
	if !r.For("a") || r.For("b") || !(Resource{All: true}).For("b") || (Resource{}).For("a") {
		t.Error("Resource.For answers wrongly")
	}
}

// TestRemotePrivateKeyPathIsRelative: private_key.file is relative to the
// configuration's folder, like the other files.
func TestRemotePrivateKeyPathIsRelative(t *testing.T) {
	c := parseInDir(t, strings.Replace(remoteConfig("    auth_method: private_key_jwt\n    private_key: {file: keys/es256.pem, alg: ES256}\n"),
		"    client_secret: ${STS_SECRET}\n", "", 1))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(c.Exchange.Remote.PrivateKey.File) || filepath.Base(c.Exchange.Remote.PrivateKey.File) != "es256.pem" {
		t.Fatalf("private_key.file = %q, want an absolute path to keys/es256.pem", c.Exchange.Remote.PrivateKey.File)
	}
}
