package config

import (
	"strings"
	"testing"
	"time"
)

// introspectionYAML is baseYAML with the issuers replaced by issuers.
func introspectionYAML(issuers string) string {
	_, rest, _ := strings.Cut(baseYAML, "exchange:")
	return "issuers:\n" + issuers + "exchange:" + rest
}

func TestIntrospectionDefaults(t *testing.T) {
	c := parseInDir(t, introspectionYAML(`
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "https://idp.example.com/introspect"
    introspection: {client_id: tokengate, client_secret: s3cret}
`))
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	in := c.Issuers[0].Introspection
	if in.AuthMethod != AuthClientSecretBasic || in.Timeout.D() != 2*time.Second || in.CacheMaxEntries != 10000 ||
		in.MaxCacheTTL.D() != 5*time.Minute || in.NegativeCacheTTL.D() != 10*time.Second || in.JWTResponse {
		t.Errorf("defaults: %+v", *in)
	}
	if !c.Issuers[0].IntrospectionOnly() {
		t.Error("an issuer without keys that introspects is introspection-only")
	}
}

func TestValidateIntrospection(t *testing.T) {
	tests := []struct {
		name    string
		issuers string
		want    []string
	}{
		{"only endpoint and credentials", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "https://idp.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret}
`, nil},
		{"discovery supplies the endpoint", `
  - issuer: "https://idp.example.com/"
    discovery: true
    introspection: {client_id: tg, client_secret: pw-secret, jwt_response: true}
`, nil},
		{"no endpoint and no discovery", `
  - issuer: "https://idp.example.com/"
    introspection: {client_id: tg, client_secret: pw-secret}
`, []string{"issuers[0].introspection_endpoint: is not set, and discovery is not true"}},
		{"endpoint without the block", `
  - issuer: "https://idp.example.com/"
    jwks_uri: "https://idp.example.com/jwks.json"
    introspection_endpoint: "https://idp.example.com/introspect"
`, []string{"issuers[0].introspection_endpoint: is set, but introspection is not"}},
		{"two issuers introspect", `
  - issuer: "https://a.example.com/"
    introspection_endpoint: "https://a.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret}
  - issuer: "https://b.example.com/"
    introspection_endpoint: "https://b.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret}
`, []string{"issuers[1].introspection: is also set on issuers[0]: only one issuer may introspect, because an opaque token carries no iss"}},
		{"plain http off loopback", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "http://idp.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret}
`, []string{`issuers[0].introspection_endpoint: "http://idp.example.com/introspect" uses plain http`}},
		{"plain http allowed", `
  - issuer: "https://idp.example.com/"
    allow_insecure_http: true
    introspection_endpoint: "http://idp.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret}
`, nil},
		{"plain http on loopback", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "http://127.0.0.1:4000/introspect"
    introspection: {client_id: tg, client_secret: pw-secret}
`, nil},
		{"not a URL", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "idp.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret}
`, []string{"issuers[0].introspection_endpoint: is not an absolute URL"}},
		{"jwt_response needs keys", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "https://idp.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret, jwt_response: true}
`, []string{"issuers[0].introspection.jwt_response: is true, but the issuer has no keys"}},
		{"missing client id and secret", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "https://idp.example.com/introspect"
    introspection: {auth_method: client_secret_post}
`, []string{"issuers[0].introspection.client_id: is empty", "issuers[0].introspection.client_secret: is empty: auth_method client_secret_post"}},
		{"private_key_jwt without key", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "https://idp.example.com/introspect"
    introspection: {client_id: tg, auth_method: private_key_jwt}
`, []string{"issuers[0].introspection.private_key: is not set: auth_method private_key_jwt"}},
		{"private_key_jwt with key", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "https://idp.example.com/introspect"
    introspection: {client_id: tg, auth_method: private_key_jwt, private_key: {file: keys/es256.pem, alg: ES256}}
`, nil},
		{"private_key_jwt with a secret", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "https://idp.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret, auth_method: private_key_jwt, private_key: {file: keys/es256.pem, alg: ES256}}
`, []string{"issuers[0].introspection.client_secret: is set, but auth_method is private_key_jwt"}},
		{"unknown auth method", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "https://idp.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret, auth_method: tls_client_auth}
`, []string{`issuers[0].introspection.auth_method: "tls_client_auth" is not a client authentication method`}},
		{"limits", `
  - issuer: "https://idp.example.com/"
    introspection_endpoint: "https://idp.example.com/introspect"
    introspection: {client_id: tg, client_secret: pw-secret, timeout: 0s, cache_max_entries: 0, max_cache_ttl: 2h, negative_cache_ttl: -1s}
`, []string{
			"issuers[0].introspection.timeout: 0s is not positive",
			"issuers[0].introspection.cache_max_entries: 0 is out of range",
			"issuers[0].introspection.max_cache_ttl: 2h0m0s is too long",
			"issuers[0].introspection.negative_cache_ttl: -1s is negative",
		}},
		{"a JWT issuer still needs keys", `
  - issuer: "https://idp.example.com/"
`, []string{"issuers[0].jwks_uri: is not set, and discovery is not true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseInDir(t, introspectionYAML(tt.issuers))
			c.src = nil // problems in the order found
			assertProblems(t, c.Validate(), tt.want, "pw-secret")
		})
	}
}
