package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // every problem, in order
	}{
		{
			name: "unknown key with suggestion",
			yaml: "routes:\n  - name: a\n    upsteam: http://x\n",
			want: []string{`routes[0].upsteam: unknown key; did you mean "upstream"?`},
		},
		{
			name: "suggestion for another spelling",
			yaml: "routes:\n  - pathPrefix: /a\n    Audience: x\n    path-prefix: /b\n",
			want: []string{
				`routes[0].pathPrefix: unknown key; did you mean "path_prefix"?`,
				`routes[0].Audience: unknown key; did you mean "audience"?`,
				`routes[0].path-prefix: unknown key; did you mean "path_prefix"?`,
			},
		},
		{
			name: "unknown key without suggestion lists the keys",
			yaml: "log:\n  colour: red\n",
			want: []string{"log.colour: unknown key; valid keys here are level, format"},
		},
		{
			name: "unknown top-level key",
			yaml: "routs: []\n",
			want: []string{`routs: unknown key; did you mean "routes"?`},
		},
		{
			name: "odd key is quoted in the path",
			yaml: "log:\n  \"a b\": 1\n",
			want: []string{`log."a b": unknown key`},
		},
		{
			name: "integer",
			yaml: "cache:\n  max_entries: lots\n",
			want: []string{`cache.max_entries: "lots" is not an integer`},
		},
		{
			name: "quoted integer",
			yaml: "cache:\n  max_entries: \"10\"\n",
			want: []string{`cache.max_entries: "10" is not an integer`},
		},
		{
			name: "float is not an integer",
			yaml: "server:\n  max_token_bytes: 1.5\n",
			want: []string{`server.max_token_bytes: "1.5" is not an integer`},
		},
		{
			name: "integer out of range",
			yaml: "server:\n  max_token_bytes: 99999999999999999999\n",
			want: []string{`server.max_token_bytes: "99999999999999999999"`},
		},
		{
			name: "boolean",
			yaml: "issuers:\n  - discovery: yes\n",
			want: []string{`issuers[0].discovery: "yes" is not a boolean: write true or false`},
		},
		{
			name: "duration without unit",
			yaml: "issuers:\n  - leeway: 30\n",
			want: []string{`issuers[0].leeway: "30" is not a duration: write it with a unit, like 30s or 5m`},
		},
		{
			name: "list expected",
			yaml: "routes:\n  - scopes: orders:read\n",
			want: []string{`routes[0].scopes: must be a list, not a single value: write [a, b] or one "- item" per line`},
		},
		{
			name: "mapping expected",
			yaml: "server: [a]\n",
			want: []string{"server: must be a mapping (key: value lines), not a list"},
		},
		{
			name: "single value expected",
			yaml: "log:\n  level: [debug]\n",
			want: []string{"log.level: must be a single value, not a list"},
		},
		{
			name: "duplicate key",
			yaml: "log:\n  level: info\n  level: debug\n",
			want: []string{"log.level: is set twice (first on line 2): keep one"},
		},
		{
			name: "two merge keys",
			yaml: "log:\n  <<: {level: info}\n  <<: {format: text}\n",
			want: []string{`log."<<": is set twice (first on line 2): merge several mappings with <<: [*a, *b]`},
		},
		{
			name: "merge of a non-mapping",
			yaml: "log:\n  <<: [a]\n",
			want: []string{`log: "<<" merges mappings only`},
		},
		{
			name: "problems in document order",
			yaml: "routes:\n  - nme: a\nlog:\n  level: [x]\nserver:\n  listen: ${NOPE}\n",
			want: []string{
				`routes[0].nme: unknown key; did you mean "name"?`,
				"log.level: must be a single value, not a list",
				"server.listen: environment variable NOPE is not set",
			},
		},
		{name: "empty file", yaml: "", want: []string{"the configuration is empty"}},
		{name: "only comments", yaml: "# nothing\n", want: []string{"the configuration is empty"}},
		{name: "null document", yaml: "~\n", want: []string{"the configuration is empty"}},
		{name: "not a mapping", yaml: "- a\n- b\n", want: []string{"the configuration must be a mapping of keys (server:, issuers:, routes: ...), not a list"}},
		{name: "scalar document", yaml: "hello\n", want: []string{"the configuration must be a mapping of keys (server:, issuers:, routes: ...), not a single value"}},
		{name: "two documents", yaml: "log: {}\n---\nlog: {}\n", want: []string{"the file holds more than one YAML document"}},
		{name: "syntax error", yaml: "log:\n  level: [\n", want: []string{"the file is not valid YAML: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), t.TempDir(), lookupTestEnv)
			assertProblems(t, err, tt.want)
		})
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name, yaml string
		check      func(t *testing.T, c *Config)
	}{
		{
			name: "trailing document marker",
			yaml: "log: {level: warn}\n---\n",
			check: func(t *testing.T, c *Config) {
				wantEqual(t, c.Log.Level, "warn")
			},
		},
		{
			name: "anchors, aliases and merge keys",
			yaml: `
routes:
  - &base
    name: a
    path_prefix: /a
    upstream: http://127.0.0.1:1
    audience: x
    timeout: 5s
  - <<: *base
    name: b
    path_prefix: /b
`,
			check: func(t *testing.T, c *Config) {
				wantEqual(t, len(c.Routes), 2)
				wantEqual(t, c.Routes[1].Name, "b")
				wantEqual(t, c.Routes[1].Upstream, "http://127.0.0.1:1")
				wantEqual(t, c.Routes[1].Timeout.D(), 5*time.Second)
			},
		},
		{
			name: "null values are absent",
			yaml: "server:\n  listen: ~\n  token_endpoint_path:\nissuers:\n  - leeway:\n",
			check: func(t *testing.T, c *Config) {
				wantEqual(t, c.Server.Listen, DefaultListen)
				wantEqual(t, c.Server.TokenEndpoint(), DefaultTokenEndpointPath)
				wantEqual(t, c.Issuers[0].Leeway.D(), DefaultLeeway)
			},
		},
		{
			name: "token endpoint disabled",
			yaml: "server:\n  token_endpoint_path: \"\"\n",
			check: func(t *testing.T, c *Config) {
				wantEqual(t, c.Server.TokenEndpoint(), "")
			},
		},
		{
			name: "explicit zero is kept",
			yaml: "issuers:\n  - leeway: 0s\ncache:\n  refresh_before: 0s\nexchange:\n  local:\n    copy_claims: []\n",
			check: func(t *testing.T, c *Config) {
				wantEqual(t, c.Issuers[0].Leeway, 0)
				wantEqual(t, c.Cache.RefreshBefore, 0)
				wantEqual(t, len(c.Exchange.Local.CopyClaims), 0)
				wantEqual(t, c.Exchange.Local.CopyClaims != nil, true)
			},
		},
		{
			name: "relative paths are resolved against the folder",
			yaml: "server:\n  tls: {cert_file: tls/c.pem, key_file: /abs/k.pem}\nexchange:\n  local:\n    signing_keys: [{file: keys/k.pem}]\n",
			check: func(t *testing.T, c *Config) {
				wantEqual(t, c.Server.TLS.CertFile, filepath.Join(c.Dir, "tls", "c.pem"))
				wantEqual(t, c.Server.TLS.KeyFile, "/abs/k.pem")
				wantEqual(t, c.Exchange.Local.SigningKeys[0].File, filepath.Join(c.Dir, "keys", "k.pem"))
			},
		},
		{
			name: "allow_insecure_http",
			yaml: "issuers:\n  - allow_insecure_http: true\n",
			check: func(t *testing.T, c *Config) {
				wantEqual(t, c.Issuers[0].AllowInsecureHTTP, true)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c, err := Parse([]byte(tt.yaml), dir, lookupTestEnv)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			wantEqual(t, c.Dir, dir)
			tt.check(t, c)
		})
	}
}

func TestDefaults(t *testing.T) {
	c := &Config{
		Issuers: []Issuer{{}},
		Routes:  []Route{{}},
		Cache:   Cache{Redis: &Redis{}},
	}
	c.applyDefaults()
	want := &Config{
		Server: Server{
			Listen: DefaultListen, AdminListen: DefaultAdminListen, MaxTokenBytes: 8192,
			ReadHeaderTimeout: Duration(10 * time.Second), BodyTimeout: Duration(10 * time.Second), MaxHeaderBytes: 65536,
			IdleTimeout: Duration(120 * time.Second), ShutdownGrace: Duration(25 * time.Second),
			DPoP: DPoP{
				Algorithms: []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"},
				MaxAge:     Duration(time.Minute), Leeway: Duration(5 * time.Second),
				NonceLifetime: Duration(5 * time.Minute), ReplayMaxEntries: 100000,
			},
		},
		Log: Log{Level: "info", Format: "json"},
		Issuers: []Issuer{{
			Algorithms: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"},
			Leeway:     Duration(30 * time.Second), MinRefreshInterval: Duration(10 * time.Second), RefreshInterval: Duration(time.Hour),
			FetchTimeout: Duration(5 * time.Second),
		}},
		Exchange: Exchange{
			Mode: "local", TokenTTL: Duration(5 * time.Minute),
			Local: Local{
				Issuer:     "http://127.0.0.1:9090",
				CopyClaims: []string{"sub", "client_id", "azp", "acr", "amr", "auth_time"},
			},
			Remote: Remote{
				AuthMethod:         "client_secret_basic",
				SubjectTokenType:   "urn:ietf:params:oauth:token-type:access_token",
				RequestedTokenType: "urn:ietf:params:oauth:token-type:access_token",
				Timeout:            Duration(2 * time.Second),
			},
		},
		Cache: Cache{MaxEntries: 100000, RefreshBefore: Duration(30 * time.Second), RevocationTTL: Duration(24 * time.Hour),
			Redis: &Redis{
				KeyPrefix: "tokengate:", DialTimeout: Duration(200 * time.Millisecond),
				ReadTimeout: Duration(200 * time.Millisecond), WriteTimeout: Duration(200 * time.Millisecond),
				BreakerFailures: 5, BreakerBackoff: Duration(5 * time.Second),
			}},
		Routes:   []Route{{Timeout: Duration(30 * time.Second), Forward: ForwardAccessToken}},
		TxnToken: TxnToken{WorkloadID: "tokengate", TTL: Duration(60 * time.Second)},
		Tracing:  Tracing{SampleRatio: 1, ServiceName: "tokengate"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("applyDefaults:\n got %+v\nwant %+v", c, want)
	}
	wantEqual(t, c.Server.TokenEndpoint(), "/oauth2/token")

	// The default lists are fresh copies.
	c.Issuers[0].Algorithms[0] = "changed"
	wantEqual(t, DefaultAlgorithms()[0], "RS256")
}

func TestDefaultIssuerFollowsAdminListen(t *testing.T) {
	c, err := Parse([]byte("server:\n  admin_listen: \"127.0.0.1:7777\"\n"), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, c.Exchange.Local.Issuer, "http://127.0.0.1:7777")
}

func TestSuggest(t *testing.T) {
	keys := []string{"name", "host", "path_prefix", "strip_prefix", "upstream", "audience", "scopes", "required_scopes"}
	tests := []struct{ key, want string }{
		{"upsteam", "upstream"},
		{"upstraem", "upstream"},
		{"UPSTREAM", "upstream"},
		{"pathPrefix", "path_prefix"},
		{"scope", "scopes"},
		{"requiredScopes", "required_scopes"},
		{"nmae", "name"},
		{"colour", ""},
		{"x", ""},
		{strings.Repeat("a", 100), ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			wantEqual(t, suggest(tt.key, keys), tt.want)
		})
	}
}

// TestParseAliasBounds: aliases cannot make Parse do unbounded work.
func TestParseAliasBounds(t *testing.T) {
	t.Run("nested merges", func(t *testing.T) {
		// Route i merges route i-1 twice: 2^40 mappings in all.
		var b strings.Builder
		b.WriteString("routes:\n  - &m0 {name: a, upstream: http://h, timeout: 1s}\n")
		for i := 1; i < 40; i++ {
			fmt.Fprintf(&b, "  - &m%d {<<: [*m%d, *m%d]}\n", i, i-1, i-1)
		}
		_, err := Parse([]byte(b.String()), t.TempDir(), nil)
		if got := messages(t, err); len(got) != 1 || got[0] != errTooManyAliases.Error() {
			t.Fatalf("got %q, want %q", got, errTooManyAliases)
		}
	})
	t.Run("merges within bounds", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("routes:\n  - &m0 {name: a, upstream: http://h, timeout: 1s}\n")
		for i := 1; i < 5; i++ {
			fmt.Fprintf(&b, "  - &m%d {<<: [*m%d, *m%d], name: r%d}\n", i, i-1, i-1, i)
		}
		c, err := Parse([]byte(b.String()), t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, len(c.Routes), 5)
		wantEqual(t, c.Routes[4].Name, "r4")
		wantEqual(t, c.Routes[4].Upstream, "http://h")
		wantEqual(t, c.Routes[4].Timeout.D(), time.Second)
	})
	t.Run("many aliases of a big list", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("routes:\n  - scopes: &s [" + strings.Repeat("x, ", 2000) + "x]\n")
		for range 100 {
			b.WriteString("  - scopes: *s\n")
		}
		_, err := Parse([]byte(b.String()), t.TempDir(), nil)
		if err == nil || !strings.Contains(err.Error(), "the configuration is too large once its aliases (*name) are expanded") {
			t.Fatalf("got %v, want too large", err)
		}
	})
}
