package config

import (
	"strings"
	"testing"
)

// TestRemoteExtraParams: exchange.remote.extra_params is a map of form
// parameters; values expand ${VAR}; names tokengate sets itself are refused
// with the key path named, never repeating a value.
func TestRemoteExtraParams(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		want  []string
		check func(t *testing.T, c *Config)
	}{
		{"dex connector and env value", "    extra_params:\n      connector_id: ${STS_SECRET}\n      tenant: acme\n", nil,
			func(t *testing.T, c *Config) {
				got := c.Exchange.Remote.ExtraParams
				if len(got) != 2 || got["connector_id"] != testEnv["STS_SECRET"] || got["tenant"] != "acme" {
					t.Errorf("extra_params = %v", got)
				}
			}},
		{"keycloak names", "    extra_params: {requested_issuer: google, requested_subject: \"${N}\"}\n", nil,
			func(t *testing.T, c *Config) {
				if c.Exchange.Remote.ExtraParams["requested_subject"] != "42" {
					t.Errorf("extra_params = %v", c.Exchange.Remote.ExtraParams)
				}
			}},
		{"reserved names", "    extra_params:\n      grant_type: x\n      Audience: y\n      client_assertion_type: z\n" +
			"      actor_token_x: a\n      resource: r\n      scope: s\n      client_secret: hunter2-extra\n", []string{
			"exchange.remote.extra_params.grant_type: is a parameter tokengate sets itself",
			"exchange.remote.extra_params.Audience: is a parameter tokengate sets itself",
			"exchange.remote.extra_params.client_assertion_type: is a parameter tokengate sets itself",
			"exchange.remote.extra_params.actor_token_x: is a parameter tokengate sets itself",
			"exchange.remote.extra_params.resource: is a parameter tokengate sets itself",
			"exchange.remote.extra_params.scope: is a parameter tokengate sets itself",
			"exchange.remote.extra_params.client_secret: is a parameter tokengate sets itself",
		}, nil},
		{"odd name", "    extra_params: {\"a b\": x}\n", []string{
			`exchange.remote.extra_params."a b": is not a plain parameter name`,
		}, nil},
		{"unset variable", "    extra_params: {connector_id: \"${NOPE_UNSET}\"}\n", []string{
			"exchange.remote.extra_params.connector_id: environment variable NOPE_UNSET is not set",
		}, nil},
		{"not a mapping", "    extra_params: [connector_id]\n", []string{
			"exchange.remote.extra_params: must be a mapping",
		}, nil},
		{"nested value", "    extra_params: {connector_id: {a: b}}\n", []string{
			"exchange.remote.extra_params.connector_id: must be a single value",
		}, nil},
		{"duplicate", "    extra_params:\n      tenant: a\n      tenant: b\n", []string{
			"exchange.remote.extra_params.tenant: is set twice",
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeKey(t, dir, "keys/es256.pem")
			c, err := Parse([]byte(remoteConfig(tc.extra)), dir, lookupTestEnv)
			if err == nil {
				err = c.Validate()
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected problems: %v", err)
				}
				tc.check(t, c)
				return
			}
			if err == nil {
				t.Fatalf("no problems, want %q", tc.want)
			}
			assertProblems(t, err, tc.want, "hunter2-extra", testEnv["STS_SECRET"])
		})
	}
}

// TestRemoteExtraParamsReservedList: every parameter the exchanger sets is
// on the reserved list (keep the two in step when either changes).
func TestRemoteExtraParamsReservedList(t *testing.T) {
	for _, p := range strings.Fields("grant_type subject_token subject_token_type audience scope requested_token_type " +
		"client_id client_secret client_assertion client_assertion_type resource actor_token actor_token_type") {
		c := parseInDir(t, remoteConfig("    extra_params: {"+p+": x}\n"))
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "extra_params."+p+": is a parameter tokengate sets itself") {
			t.Errorf("extra_params.%s: %v", p, err)
		}
	}
}

// TestRemoteCustomSubjectTokenType: an STS profile's own subject token type
// URI (Auth0 Custom Token Exchange) is accepted; other urn:ietf types and
// non-URIs are not.
func TestRemoteCustomSubjectTokenType(t *testing.T) {
	tests := []struct {
		value string
		want  []string
	}{
		{"urn:acme:umbrella-token", nil},
		{"https://acme.example.com/umbrella-token", nil},
		{"urn:ietf:params:oauth:token-type:id_token", []string{`exchange.remote.subject_token_type: "urn:ietf:params:oauth:token-type:id_token" is not a token type tokengate can use`}},
		{"umbrella token", []string{`exchange.remote.subject_token_type: "umbrella token" is not a token type tokengate can use`}},
	}
	for _, tc := range tests {
		c := parseInDir(t, remoteConfig("    subject_token_type: \""+tc.value+"\"\n"))
		err := c.Validate()
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.value, err)
			}
			continue
		}
		assertProblems(t, err, tc.want)
	}
}
