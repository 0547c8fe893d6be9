package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateBase(t *testing.T) {
	c := parseInDir(t, baseYAML)
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// TestValidate changes one thing in a valid configuration and expects
// exactly the listed problems (by prefix), in order.
func TestValidate(t *testing.T) {
	str := func(s string) *string { return &s }
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
	}{
		// server
		{"listen empty", func(c *Config) { c.Server.Listen = "" },
			[]string{"server.listen: is empty: set host:port, like 127.0.0.1:8080"}},
		{"listen without port", func(c *Config) { c.Server.Listen = "localhost" },
			[]string{`server.listen: "localhost" is not host:port: write it like 127.0.0.1:8080, or :8080 for every interface`}},
		{"listen port not a number", func(c *Config) { c.Server.Listen = "127.0.0.1:http" },
			[]string{`server.listen: "127.0.0.1:http" has port "http", which is not a number from 0 to 65535`}},
		{"listen port too large", func(c *Config) { c.Server.AdminListen = "127.0.0.1:70000" },
			[]string{`server.admin_listen: "127.0.0.1:70000" has port "70000"`}},
		{"same address", func(c *Config) { c.Server.AdminListen = c.Server.Listen },
			[]string{`server.admin_listen: "127.0.0.1:8080" is the same address as server.listen`}},
		{"same port on every interface", func(c *Config) { c.Server.AdminListen = ":8080" },
			[]string{`server.admin_listen: ":8080" is the same address as server.listen`}},
		{"both on random ports", func(c *Config) { c.Server.Listen, c.Server.AdminListen = "127.0.0.1:0", "127.0.0.1:0" }, nil},
		{"token endpoint relative", func(c *Config) { c.Server.TokenEndpointPath = str("token") },
			[]string{`server.token_endpoint_path: "token" does not start with "/"`}},
		{"token endpoint disabled", func(c *Config) { c.Server.TokenEndpointPath = str("") }, nil},
		{"dpop alg HS256", func(c *Config) { c.Server.DPoP.Algorithms = []string{"ES256", "HS256"} },
			[]string{`server.dpop.algorithms[1]: "HS256" is not an asymmetric JWS algorithm`}},
		{"dpop alg none", func(c *Config) { c.Server.DPoP.Algorithms = []string{"none"} },
			[]string{`server.dpop.algorithms[0]: "none" is not an asymmetric JWS algorithm`}},
		{"dpop algs empty", func(c *Config) { c.Server.DPoP.Algorithms = []string{} },
			[]string{"server.dpop.algorithms: is empty"}},
		{"dpop max_age zero", func(c *Config) { c.Server.DPoP.MaxAge = 0 },
			[]string{"server.dpop.max_age: 0s is out of range"}},
		{"dpop leeway negative", func(c *Config) { c.Server.DPoP.Leeway = Duration(-time.Second) },
			[]string{"server.dpop.leeway: -1s is out of range"}},
		{"dpop nonce_lifetime short", func(c *Config) { c.Server.DPoP.NonceLifetime = Duration(time.Second) },
			[]string{"server.dpop.nonce_lifetime: 1s is out of range"}},
		{"dpop replay_max_entries zero", func(c *Config) { c.Server.DPoP.ReplayMaxEntries = 0 },
			[]string{"server.dpop.replay_max_entries: 0 is out of range"}},
		{"max_token_bytes small", func(c *Config) { c.Server.MaxTokenBytes = 255 },
			[]string{"server.max_token_bytes: 255 is out of range: use 256 to 1048576"}},
		{"max_token_bytes large", func(c *Config) { c.Server.MaxTokenBytes = 1<<20 + 1; c.Server.MaxHeaderBytes = 2 << 20 },
			[]string{"server.max_token_bytes: 1048577 is out of range"}},
		{"max_header_bytes below token", func(c *Config) { c.Server.MaxTokenBytes = 1 << 20 },
			[]string{"server.max_header_bytes: 65536 is less than server.max_token_bytes (1048576)"}},
		{"max_header_bytes out of range", func(c *Config) { c.Server.MaxHeaderBytes = 10 },
			[]string{"server.max_header_bytes: 10 is out of range"}},
		{"tls half", func(c *Config) { c.Server.TLS = &TLS{CertFile: c.Exchange.Local.SigningKeys[0].File} },
			[]string{"server.tls.key_file: is empty: name its PEM private key; set both cert_file and key_file, or remove server.tls"}},
		{"tls missing files", func(c *Config) { c.Server.TLS = &TLS{CertFile: filepath.Join(c.Dir, "c.pem"), KeyFile: c.Dir} },
			[]string{
				`server.tls.cert_file: file "c.pem" does not exist: name a PEM certificate (chain)`,
				`server.tls.key_file: "." is a folder, not a file`,
			}},
		{"read_header_timeout zero", func(c *Config) { c.Server.ReadHeaderTimeout = 0 },
			[]string{"server.read_header_timeout: 0s is not positive"}},
		{"negative durations", func(c *Config) { c.Server.IdleTimeout = -1; c.Server.ShutdownGrace = Duration(-time.Second) },
			[]string{"server.idle_timeout: -1ns is negative", "server.shutdown_grace: -1s is negative"}},

		// log
		{"log", func(c *Config) { c.Log = Log{Level: "verbose", Format: "yaml"} },
			[]string{`log.level: "verbose" is not a log level: use debug, info, warn or error`,
				`log.format: "yaml" is not a log format: use json or text`}},

		// issuers
		{"no issuers", func(c *Config) { c.Issuers = nil }, []string{"issuers: no issuer is configured"}},
		{"issuer empty", func(c *Config) { c.Issuers[0].Issuer = "" }, []string{"issuers[0].issuer: is empty"}},
		{"issuer twice", func(c *Config) { c.Issuers = append(c.Issuers, c.Issuers[0]) },
			[]string{`issuers[1].issuer: "https://idp.example.com/" is also issuers[0]: list each issuer once`}},
		{"neither jwks_uri nor discovery", func(c *Config) { c.Issuers[0].JWKSURI = "" },
			[]string{"issuers[0].jwks_uri: is not set, and discovery is not true: set jwks_uri to the provider's JWKS URL, or discovery: true"}},
		{"both jwks_uri and discovery", func(c *Config) { c.Issuers[0].Discovery = true },
			[]string{"issuers[0].jwks_uri: is set together with discovery: true"}},
		{"jwks_uri relative", func(c *Config) { c.Issuers[0].JWKSURI = "/jwks.json" },
			[]string{"issuers[0].jwks_uri: is not an absolute URL"}},
		{"jwks_uri scheme", func(c *Config) { c.Issuers[0].JWKSURI = "ftp://idp/jwks" },
			[]string{`issuers[0].jwks_uri: "ftp://idp/jwks" is not an http(s) URL`}},
		{"jwks_uri plain http", func(c *Config) { c.Issuers[0].JWKSURI = "http://idp.example.com/jwks" },
			[]string{`issuers[0].jwks_uri: "http://idp.example.com/jwks" uses plain http`}},
		{"jwks_uri plain http allowed", func(c *Config) {
			c.Issuers[0].JWKSURI = "http://idp.example.com/jwks"
			c.Issuers[0].AllowInsecureHTTP = true
		}, nil},
		{"jwks_uri plain http on loopback", func(c *Config) { c.Issuers[0].JWKSURI = "http://[::1]:8000/jwks" }, nil},
		{"jwks_uri plain http on localhost", func(c *Config) { c.Issuers[0].JWKSURI = "http://localhost:8000/jwks" }, nil},
		{"jwks_uri plain http on 127.0.0.0/8", func(c *Config) { c.Issuers[0].JWKSURI = "http://127.1.2.3/jwks" }, nil},
		{"jwks_uri credentials are not shown", func(c *Config) { c.Issuers[0].JWKSURI = "https://u:pw-secret@idp/jwks" },
			[]string{`issuers[0].jwks_uri: "https://u:xxxxx@idp/jwks" holds a user name or password`}},
		{"discovery needs a URL issuer", func(c *Config) {
			c.Issuers[0].JWKSURI, c.Issuers[0].Discovery, c.Issuers[0].Issuer = "", true, "idp"
		}, []string{"issuers[0].issuer: is not an absolute URL"}},
		{"discovery over plain http", func(c *Config) {
			c.Issuers[0].JWKSURI, c.Issuers[0].Discovery, c.Issuers[0].Issuer = "", true, "http://idp.example.com"
		}, []string{`issuers[0].issuer: "http://idp.example.com" uses plain http`}},
		{"discovery with a URN issuer is fine without it", func(c *Config) { c.Issuers[0].Issuer = "urn:idp" }, nil},
		{"algorithms", func(c *Config) {
			c.Issuers[0].Algorithms = []string{"RS256", "none", "HS256", "hs512", "rs384", "RS999"}
		},
			[]string{
				`issuers[0].algorithms[1]: "none" is never accepted: an unsigned token proves nothing; remove it`,
				`issuers[0].algorithms[2]: "HS256" is never accepted: it is a shared-secret (HMAC) algorithm and cannot be verified against JWKS public keys`,
				`issuers[0].algorithms[3]: "hs512" is never accepted`,
				`issuers[0].algorithms[4]: "rs384" is not a supported algorithm: names are case-sensitive, write RS384`,
				`issuers[0].algorithms[5]: "RS999" is not a supported algorithm: use RS256, RS384`,
			}},
		{"algorithms empty", func(c *Config) { c.Issuers[0].Algorithms = []string{} },
			[]string{"issuers[0].algorithms: is empty"}},
		{"leeway", func(c *Config) { c.Issuers[0].Leeway = Duration(6 * time.Minute) },
			[]string{"issuers[0].leeway: 6m0s is out of range: use 0s to 5m0s"}},
		{"leeway zero", func(c *Config) { c.Issuers[0].Leeway = 0 }, nil},
		{"leeway negative", func(c *Config) { c.Issuers[0].Leeway = -1 }, []string{"issuers[0].leeway: -1ns is out of range"}},
		{"min_refresh_interval", func(c *Config) { c.Issuers[0].MinRefreshInterval = Duration(time.Millisecond) },
			[]string{"issuers[0].min_refresh_interval: 1ms is too short: use at least 1s"}},
		{"refresh_interval below min_refresh_interval", func(c *Config) { c.Issuers[0].RefreshInterval = Duration(5 * time.Second) },
			[]string{"issuers[0].refresh_interval: 5s is shorter than min_refresh_interval (10s)"}},
		{"refresh_interval equal to min_refresh_interval", func(c *Config) { c.Issuers[0].RefreshInterval = Duration(10 * time.Second) }, nil},
		{"fetch_timeout", func(c *Config) { c.Issuers[0].FetchTimeout = 0 },
			[]string{"issuers[0].fetch_timeout: 0s is not positive"}},

		// exchange
		{"remote without settings", func(c *Config) { c.Exchange.Mode = "remote" },
			[]string{
				"exchange.remote.token_endpoint: is not set, and issuer is not either",
				"exchange.remote.client_id: is empty",
				"exchange.remote.client_secret: is empty: auth_method client_secret_basic sends the client secret",
			}},
		{"unknown mode", func(c *Config) { c.Exchange.Mode = "sts" },
			[]string{`exchange.mode: "sts" is not an exchange mode: use "local"`}},
		{"token_ttl zero", func(c *Config) { c.Exchange.TokenTTL = 0 },
			[]string{"exchange.token_ttl: 0s is not positive"}},
		{"token_ttl long", func(c *Config) { c.Exchange.TokenTTL = Duration(25 * time.Hour) },
			[]string{"exchange.token_ttl: 25h0m0s is too long"}},
		{"local issuer empty", func(c *Config) { c.Exchange.Local.Issuer = "" },
			[]string{"exchange.local.issuer: is empty"}},
		{"local issuer slash", func(c *Config) { c.Exchange.Local.Issuer = "http://127.0.0.1:9090/" },
			[]string{`exchange.local.issuer: "http://127.0.0.1:9090/" ends with "/": write it without, like "http://127.0.0.1:9090"`}},
		{"local issuer query", func(c *Config) { c.Exchange.Local.Issuer = "https://gw.example.com?x=1" },
			[]string{`exchange.local.issuer: "https://gw.example.com?x=1" has a query`}},
		{"local issuer fragment", func(c *Config) { c.Exchange.Local.Issuer = "https://gw.example.com#x" },
			[]string{`exchange.local.issuer: "https://gw.example.com#x" has a fragment`}},
		{"local issuer with path", func(c *Config) { c.Exchange.Local.Issuer = "https://gw.example.com/tokengate" }, nil},
		{"no signing keys", func(c *Config) { c.Exchange.Local.SigningKeys = nil },
			[]string{"exchange.local.signing_keys: no signing key is configured: make one with `tokengate keys generate --alg ES256 --out keys/es256.pem`"}},
		{"signing key problems", func(c *Config) {
			k := c.Exchange.Local.SigningKeys[0]
			c.Exchange.Local.SigningKeys = []SigningKey{
				{File: k.File, Alg: "ES256", Kid: "a"},
				{File: filepath.Join(c.Dir, "keys/rsa.pem"), Alg: "RS256", Kid: "a"},
				{File: "", Alg: "HS256"},
				{File: k.File},
			}
		}, []string{
			"exchange.local.signing_keys[1].file: file \"keys/rsa.pem\" does not exist: make a key with `tokengate keys generate --alg RS256 --out keys/rsa.pem`",
			`exchange.local.signing_keys[1].kid: "a" is also the kid of signing_keys[0]: kids must be unique`,
			"exchange.local.signing_keys[2].file: is empty: name a PEM private key file, like keys/es256.pem",
			`exchange.local.signing_keys[2].alg: "HS256" is not a signing algorithm: use ES256, RS256, PS256, EdDSA`,
			"exchange.local.signing_keys[3].alg: is empty: set the key's algorithm: ES256, RS256, PS256, EdDSA",
		}},
		{"copy_claims", func(c *Config) { c.Exchange.Local.CopyClaims = []string{"sub", "", "aud", "scope", "tenant"} },
			[]string{
				"exchange.local.copy_claims[1]: is empty",
				`exchange.local.copy_claims[2]: "aud" is a claim tokengate sets itself on every exchanged token: remove it from copy_claims`,
				`exchange.local.copy_claims[3]: "scope" is a claim tokengate sets itself`,
			}},
		{"remote mode skips local checks", func(c *Config) {
			c.Exchange.Mode = "remote"
			c.Exchange.Local = Local{}
			c.Exchange.Remote.TokenEndpoint = "https://sts.example.com/token"
			c.Exchange.Remote.ClientID = "tokengate"
			c.Exchange.Remote.ClientSecret = "pw-secret"
		}, nil},

		// cache
		{"max_entries", func(c *Config) { c.Cache.MaxEntries = 0 },
			[]string{"cache.max_entries: 0 is too small: the in-memory cache needs at least 1 entry"}},
		{"refresh_before negative", func(c *Config) { c.Cache.RefreshBefore = -1 },
			[]string{"cache.refresh_before: -1ns is negative"}},
		{"refresh_before zero", func(c *Config) { c.Cache.RefreshBefore = 0 }, nil},
		{"refresh_before not below ttl", func(c *Config) { c.Cache.RefreshBefore = c.Exchange.TokenTTL },
			[]string{"cache.refresh_before: 5m0s is not shorter than exchange.token_ttl (5m0s)"}},
		{"redis without defaults", func(c *Config) { c.Cache.Redis = &Redis{Password: "pw-secret"} },
			[]string{
				"cache.redis.addrs: is empty: list the Redis address",
				"cache.redis.encryption_key: is empty: Redis values are encrypted with it",
				"cache.redis.dial_timeout: 0s is not positive",
				"cache.redis.read_timeout: 0s is not positive",
				"cache.redis.write_timeout: 0s is not positive",
				"cache.redis.breaker_failures: 0 is out of range: use 1 to 1000",
				"cache.redis.breaker_backoff: 0s is not positive",
			}},
		{"redis valid", func(c *Config) { c.Cache.Redis = validRedis() }, nil},
		{"redis sentinel and cluster valid", func(c *Config) {
			r := validRedis()
			r.Addrs, r.MasterName, r.DB = []string{"s1:26379", "s2:26379"}, "mymaster", 3
			c.Cache.Redis = r
		}, nil},
		{"redis addrs", func(c *Config) {
			r := validRedis()
			r.Addrs = []string{"redis://h:6379", "h", "h:0", "h:6379", "h:6379"}
			c.Cache.Redis = r
		}, []string{
			"cache.redis.addrs[0]: is a URL: write host:port only",
			`cache.redis.addrs[1]: "h" is not host:port`,
			`cache.redis.addrs[2]: "h:0" has port "0"`,
			`cache.redis.addrs[4]: "h:6379" is also addrs[3]`,
		}},
		{"redis keys", func(c *Config) {
			r := validRedis()
			r.EncryptionKey = "pw-secret not base64"
			r.PreviousEncryptionKeys = []string{"", "c2hvcnQ=", testRedisKey}
			r.HashKey = "c2hvcnQ"
			c.Cache.Redis = r
		}, []string{
			"cache.redis.encryption_key: is not base64: make one with `head -c 32 /dev/urandom | base64`",
			"cache.redis.previous_encryption_keys[0]: is empty",
			"cache.redis.previous_encryption_keys[1]: decodes to 5 bytes, need 32",
			"cache.redis.hash_key: decodes to 5 bytes, need 32",
		}},
		{"redis previous same as active", func(c *Config) {
			r := validRedis()
			r.PreviousEncryptionKeys = []string{testRedisKey}
			c.Cache.Redis = r
		}, []string{"cache.redis.previous_encryption_keys[0]: is the same key as encryption_key"}},
		{"redis modes", func(c *Config) {
			r := validRedis()
			r.MasterName, r.Cluster, r.DB = "mymaster", true, 1
			c.Cache.Redis = r
		}, []string{
			"cache.redis.cluster: is true together with master_name",
			"cache.redis.db: is set for a cluster",
		}},
		{"redis db range and prefix", func(c *Config) {
			r := validRedis()
			r.DB, r.KeyPrefix = 16, "token gate:"
			c.Cache.Redis = r
		}, []string{"cache.redis.db: 16 is out of range: use 0 to 15", "cache.redis.key_prefix: contains whitespace"}},
		{"redis timeouts and pool", func(c *Config) {
			r := validRedis()
			r.ReadTimeout, r.PoolSize, r.BreakerFailures = Duration(time.Minute), -1, 1001
			c.Cache.Redis = r
		}, []string{
			"cache.redis.read_timeout: 1m0s is too long",
			"cache.redis.pool_size: -1 is negative",
			"cache.redis.breaker_failures: 1001 is out of range",
		}},
		{"redis tls", func(c *Config) {
			r := validRedis()
			r.TLS = &RedisTLS{CAFile: filepath.Join(c.Dir, "ca.pem"), CertFile: "x.pem"}
			c.Cache.Redis = r
		}, []string{
			`cache.redis.tls.ca_file: file "ca.pem" does not exist`,
			"cache.redis.tls: has only one of cert_file and key_file",
		}},
		{"redis tls valid", func(c *Config) {
			r := validRedis()
			r.TLS = &RedisTLS{CAFile: c.Exchange.Local.SigningKeys[0].File, ServerName: "redis.internal"}
			c.Cache.Redis = r
		}, nil},
		{"revocation_ttl", func(c *Config) { c.Cache.RevocationTTL = 0 },
			[]string{"cache.revocation_ttl: 0s is not positive"}},
		{"admin_token short", func(c *Config) { c.Server.AdminToken = "pw-secret" },
			[]string{"server.admin_token: is 9 characters: use at least 16"}},
		{"admin_token space", func(c *Config) { c.Server.AdminToken = "pw-secret pw-secret" },
			[]string{"server.admin_token: contains whitespace"}},
		{"admin_token valid", func(c *Config) { c.Server.AdminToken = "0123456789abcdef0123" }, nil},

		// routes
		{"no routes", func(c *Config) { c.Routes = nil }, []string{"routes: no route is configured"}},
		{"route name", func(c *Config) { c.Routes[0].Name = "" }, []string{"routes[0].name: is empty"}},
		{"route name chars", func(c *Config) { c.Routes[0].Name = "orders api" },
			[]string{`routes[0].name: "orders api" is not a valid name: use 1 to 64 letters, digits, "_", "." or "-"`}},
		{"route name long", func(c *Config) { c.Routes[0].Name = strings.Repeat("a", 65) },
			[]string{`routes[0].name: "aaaa`}},
		{"route name twice", func(c *Config) { c.Routes[1].Name = "orders" },
			[]string{`routes[1].name: "orders" is also the name of routes[0]: route names must be unique`}},
		{"path_prefix", func(c *Config) {
			for i, p := range []string{"", "orders", "/a?b", "/a/../b", "/a//b", "/a/", "/a b"} {
				c.Routes = append(c.Routes, Route{Name: "r" + string(rune('a'+i)), PathPrefix: p, Upstream: "http://h", Audience: "a", Timeout: 1})
			}
		}, []string{
			"routes[2].path_prefix: is empty",
			`routes[3].path_prefix: "orders" does not start with "/": write it like "/orders"`,
			`routes[4].path_prefix: "/a?b" has a query or fragment`,
			`routes[5].path_prefix: "/a/../b" contains ".."`,
			`routes[6].path_prefix: "/a//b" contains "//"`,
			`routes[7].path_prefix: "/a/" ends with "/": write "/a"`,
			`routes[8].path_prefix: "/a b" contains whitespace`,
		}},
		{"path_prefix root", func(c *Config) { c.Routes[1].PathPrefix = "/" }, nil},
		{"same match", func(c *Config) { c.Routes[1].PathPrefix = "/orders" },
			[]string{`routes[1].path_prefix: "/orders" on any host is also the match of routes[0]`}},
		{"same prefix on another host", func(c *Config) { c.Routes[1].PathPrefix, c.Routes[1].Host = "/orders", "api.example.com" }, nil},
		{"same match with host case", func(c *Config) {
			c.Routes[0].Host, c.Routes[1].Host, c.Routes[1].PathPrefix = "api.example.com", "API.example.com", "/orders"
		}, []string{`routes[1].path_prefix: "/orders" on host "API.example.com" is also the match of routes[0]`}},
		{"host", func(c *Config) {
			for i, h := range []string{"http://a", "a/b", "a:80", "a b", "[::1]", "[::1]:80", "[nope]"} {
				c.Routes = append(c.Routes, Route{Name: "h" + string(rune('a'+i)), Host: h, PathPrefix: "/", Upstream: "http://h", Audience: "a", Timeout: 1})
			}
		}, []string{
			`routes[2].host: "http://a" has a scheme`,
			`routes[3].host: "a/b" has a path`,
			`routes[4].host: "a:80" has a port`,
			`routes[5].host: "a b" is not a host name`,
			`routes[7].host: "[::1]:80" is not a bracketed IPv6 address`,
			`routes[8].host: "[nope]" is not a bracketed IPv6 address`,
		}},
		{"upstream", func(c *Config) {
			for i, u := range []string{"", "127.0.0.1:9001", "ftp://h", "http://", "http://h?x=1", "http://h#f", "http://u:secret-pw@h", "https://h/base"} {
				c.Routes = append(c.Routes, Route{Name: "u" + string(rune('a'+i)), PathPrefix: "/u" + string(rune('a'+i)), Upstream: u, Audience: "a", Timeout: 1})
			}
		}, []string{
			"routes[2].upstream: is empty",
			"routes[3].upstream: is not an absolute URL: write it with its scheme, like http://127.0.0.1:9001",
			`routes[4].upstream: "ftp://h" is not an http(s) URL`,
			`routes[5].upstream: "http:" has no host`,
			`routes[6].upstream: "http://h?x=1" has a query`,
			`routes[7].upstream: "http://h#f" has a fragment`,
			`routes[8].upstream: "http://u:xxxxx@h" holds a user name or password`,
		}},
		{"audience", func(c *Config) { c.Routes[0].Audience = "" }, []string{"routes[0].audience: is empty"}},
		{"lists", func(c *Config) {
			c.Routes[0].Scopes = []string{"a", ""}
			c.Routes[0].RequiredScopes = []string{"a b"}
			c.Routes[0].AllowedClients = []string{"c\t"}
			c.Routes[0].ACRValues = []string{"x\n"}
		}, []string{
			"routes[0].scopes[1]: is empty: remove the entry, or name a scope",
			`routes[0].required_scopes[0]: "a b" contains whitespace: a scope is one word`,
			`routes[0].allowed_clients[0]: "c\t" contains whitespace: a client id is one word`,
			`routes[0].acr_values[0]: "x\n" contains whitespace`,
		}},
		{"max_age", func(c *Config) { c.Routes[0].MaxAge = -1 }, []string{"routes[0].max_age: -1ns is negative"}},
		{"timeout", func(c *Config) { c.Routes[1].Timeout = 0 }, []string{"routes[1].timeout: 0s is not positive"}},

		// txn_token and routes[].forward
		{"forward unknown", func(c *Config) { c.Routes[1].Forward = "txn" },
			[]string{`routes[1].forward: "txn" is not a forward mode: use access_token`}},
		{"forward txn_token without trust domain", func(c *Config) { c.Routes[1].Forward = ForwardTxnToken },
			[]string{`txn_token.trust_domain: is empty but routes[1].forward is "txn_token"`}},
		{"forward both without trust domain", func(c *Config) { c.Routes[0].Forward = ForwardBoth },
			[]string{`txn_token.trust_domain: is empty but routes[0].forward is "both"`}},
		{"forward txn_token", func(c *Config) { c.Routes[1].Forward = ForwardTxnToken; c.TxnToken.TrustDomain = "td.example" }, nil},
		{"forward access_token", func(c *Config) { c.Routes[1].Forward = ForwardAccessToken }, nil},
		{"trust domain with space", func(c *Config) { c.TxnToken.TrustDomain = "td example" },
			[]string{"txn_token.trust_domain: must be 1 to 256 characters without whitespace"}},
		{"workload id empty", func(c *Config) { c.TxnToken.WorkloadID = "" },
			[]string{"txn_token.workload_id: is empty"}},
		{"txn ttl zero", func(c *Config) { c.TxnToken.TTL = 0 },
			[]string{"txn_token.ttl: 0s is not positive"}},
		{"txn ttl long", func(c *Config) { c.TxnToken.TTL = Duration(10 * time.Minute) },
			[]string{"txn_token.ttl: 10m0s is longer than 5m0s"}},
		{"txn ttl at the cap", func(c *Config) { c.TxnToken.TTL = Duration(MaxTxnTTL) }, nil},
		{"context claims", func(c *Config) { c.TxnToken.ContextClaims = []string{"tenant", "", "exp", "tenant", " x"} },
			[]string{
				"txn_token.context_claims[1]: must be a claim name",
				`txn_token.context_claims[2]: "exp" is a claim the Txn-Token sets itself`,
				`txn_token.context_claims[3]: "tenant" is also context_claims[0]`,
				"txn_token.context_claims[4]: must be a claim name",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseInDir(t, baseYAML)
			c.src = nil // problems in the order found
			tt.change(c)
			assertProblems(t, c.Validate(), tt.want, "pw-secret", "secret-pw")
		})
	}
}

func TestValidateUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can read any file")
	}
	c := parseInDir(t, baseYAML)
	if err := os.Chmod(c.Exchange.Local.SigningKeys[0].File, 0); err != nil {
		t.Fatal(err)
	}
	got := messages(t, c.Validate())
	if m := missing(got, `exchange.local.signing_keys[0].file: file "keys/es256.pem" cannot be read (permission denied)`); len(m) > 0 {
		t.Fatalf("problems %q lack %q", got, m)
	}
}

// TestValidateDerivedIssuer: the default exchange.local.issuer comes from
// server.admin_listen, and says so when it is not usable.
func TestValidateDerivedIssuer(t *testing.T) {
	tests := []struct {
		admin string
		want  []string
	}{
		{"0.0.0.0:9090", nil},
		{":9090", []string{`exchange.local.issuer: the default, derived from server.admin_listen, is not usable: "http://:9090" has no host`}},
		{"nonsense", []string{`server.admin_listen: "nonsense" is not host:port`}},
	}
	for _, tt := range tests {
		t.Run(tt.admin, func(t *testing.T) {
			c := parseInDir(t, baseYAML+"server:\n  admin_listen: \""+tt.admin+"\"\n")
			got := messages(t, c.Validate())
			if len(got) != len(tt.want) || len(missing(got, tt.want...)) > 0 {
				t.Fatalf("problems %q, want %q", got, tt.want)
			}
		})
	}
}

// TestValidateDocumentOrder: problems come in the order of the file, not of
// the schema.
func TestValidateDocumentOrder(t *testing.T) {
	text := baseYAML + "cache:\n  max_entries: 0\nlog:\n  level: loud\n"
	c := parseInDir(t, text)
	got := messages(t, c.Validate())
	want := []string{"cache.max_entries: 0 is too small", `log.level: "loud" is not a log level`}
	if len(got) != 2 || !strings.HasPrefix(got[0], want[0]) || !strings.HasPrefix(got[1], want[1]) {
		t.Fatalf("problems %q, want in order %q", got, want)
	}
}

func TestValidateHasNoSideEffects(t *testing.T) {
	c := parseInDir(t, baseYAML)
	c.Issuers[0].Algorithms = nil
	c.Routes[0].Timeout = 0
	_ = c.Validate()
	if c.Issuers[0].Algorithms != nil || c.Routes[0].Timeout != 0 {
		t.Fatal("Validate changed the configuration")
	}
}

// testRedisKey is base64 of 32 bytes.
const testRedisKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// validRedis is a valid cache.redis with its defaults.
func validRedis() *Redis {
	return &Redis{
		Addrs:           []string{"127.0.0.1:6379"},
		KeyPrefix:       DefaultRedisKeyPrefix,
		EncryptionKey:   testRedisKey,
		DialTimeout:     Duration(DefaultRedisDialTimeout),
		ReadTimeout:     Duration(DefaultRedisReadTimeout),
		WriteTimeout:    Duration(DefaultRedisWriteTimeout),
		BreakerFailures: DefaultRedisBreakerFailures,
		BreakerBackoff:  Duration(DefaultRedisBreakerBackoff),
	}
}
