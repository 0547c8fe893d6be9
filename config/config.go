// Package config is tokengate's configuration file: the YAML schema as documented
// structs, loading (environment expansion, strict decoding, relative paths),
// defaults in one place, and validation that names every problem with its key
// path and the fix. It imports no other tokengate package.
package config

import (
	"fmt"
	"time"
)

// Config is the whole configuration file. Field comments give the YAML key and
// its default; docs/configuration.md is the user-facing reference.
type Config struct {
	Server   Server   `yaml:"server"`
	Log      Log      `yaml:"log"`
	Issuers  []Issuer `yaml:"issuers"`
	Exchange Exchange `yaml:"exchange"`
	Cache    Cache    `yaml:"cache"`
	Routes   []Route  `yaml:"routes"`
	// TxnToken configures Transaction Tokens (config/txn.go).
	TxnToken TxnToken `yaml:"txn_token"`
	// CORS answers browsers' preflights and labels responses for them, on
	// every route without its own cors (config/cors.go). nil: off.
	CORS *CORS `yaml:"cors"`
	// Authz are the decision listeners for a proxy in front: HTTP
	// forward-auth and Envoy ext_authz (config/authz.go).
	Authz Authz `yaml:"authz"`
	// Tracing configures OpenTelemetry tracing (config/tracing.go).
	Tracing Tracing `yaml:"tracing"`

	// Dir is the folder of the file the configuration was loaded from. Relative
	// file paths have already been resolved against it by Load.
	Dir string `yaml:"-"`

	// src is what Parse learned about the file beyond its values (which keys
	// it sets, on which lines); nil for a Config built in code.
	src *source
}

// Server configures the two listeners.
type Server struct {
	// Listen is the edge: proxied routes and the token endpoint. Default "127.0.0.1:8080".
	Listen string `yaml:"listen"`
	// AdminListen serves metrics, health, JWKS and discovery. Default "127.0.0.1:9090".
	AdminListen string `yaml:"admin_listen"`
	// TokenEndpointPath is the RFC 8693 endpoint on the edge. nil means the
	// default "/oauth2/token"; an explicit "" disables it.
	TokenEndpointPath *string `yaml:"token_endpoint_path"`
	// PublicURL is the edge's base URL as clients see it (behind a load
	// balancer, say); the token endpoint advertised in discovery is PublicURL
	// + TokenEndpointPath, and DPoP proofs name PublicURL + path in htu.
	// Optional; see Server.TokenEndpointURL.
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are the peers (CIDRs or single IP addresses) whose
	// forwarding headers are believed: X-Forwarded-For is appended to, the
	// rest they set is kept, and DPoP htu may come from their
	// X-Forwarded-Proto/-Host. Default []: no peer is trusted, and the
	// gateway sets X-Forwarded-* itself (gateway/forwarded.go).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MaxTokenBytes bounds a bearer token before any parsing. Default 8192.
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// TLS, when set, serves the edge listener over TLS.
	TLS *TLS `yaml:"tls"`
	// ReadHeaderTimeout bounds how long a client may take to send headers
	// (slowloris). Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// BodyTimeout bounds how long a client may take to send a body the
	// gateway reads itself (token endpoint, admin, authz; at most 64 KiB
	// each): a slower client is answered 408 and its connection closed, so
	// it cannot hold a worker. Proxied bodies stream and are not bounded by
	// it. Default 10s.
	BodyTimeout Duration `yaml:"body_timeout"`
	// MaxHeaderBytes bounds request headers. Default 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// IdleTimeout closes idle client keep-alive connections. Default 120s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// ShutdownGrace is how long in-flight requests may take to finish after
	// SIGTERM. Default 25s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// AdminToken is the bearer secret of the admin endpoints that change
	// state (POST /admin/revoke). Empty disables them. At least 16 characters.
	AdminToken string `yaml:"admin_token"`
	// ShutdownDelay is how long the listeners keep accepting after SIGTERM
	// while /readyz already fails, so load balancers stop sending first.
	// Default 0s.
	ShutdownDelay Duration `yaml:"shutdown_delay"`
	// DPoP tunes the checks of DPoP-bound tokens (docs/dpop.md).
	DPoP DPoP `yaml:"dpop"`
}

// TLS names a certificate and key for a listener.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Log configures log/slog output.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is json or text. Default json.
	Format string `yaml:"format"`
	// Subjects adds the token's sub to the access log. Default false: a
	// subject identifies a person, so it is left out unless asked for.
	Subjects bool `yaml:"subjects"`
}

// Issuer is one identity provider whose umbrella tokens are accepted.
type Issuer struct {
	// Issuer is matched exactly against the token's iss.
	Issuer string `yaml:"issuer"`
	// JWKSURI is where the issuer's public keys are; or set Discovery.
	JWKSURI string `yaml:"jwks_uri"`
	// Discovery fetches jwks_uri from the issuer's OIDC / RFC 8414 metadata.
	Discovery bool `yaml:"discovery"`
	// Algorithms is the allowlist of JWS algorithms. Default: every asymmetric
	// algorithm (RS*, PS*, ES*, EdDSA). none and HS* are never accepted.
	Algorithms []string `yaml:"algorithms"`
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30s.
	Leeway Duration `yaml:"leeway"`
	// UmbrellaAudience, when set, is an aud value that may reach every route.
	UmbrellaAudience string `yaml:"umbrella_audience"`
	// PermissionsAsScopes adds the entries of the token's "permissions" claim
	// (Auth0 RBAC, an array of strings) to its scopes. Default false.
	PermissionsAsScopes bool `yaml:"permissions_as_scopes"`
	// MinRefreshInterval is the least time between two JWKS fetches, so tokens
	// with random kids cannot make tokengate hammer the IdP. Default 10s.
	MinRefreshInterval Duration `yaml:"min_refresh_interval"`
	// RefreshInterval is the age after which the keys are fetched again in
	// the background, so a key the issuer removed (rotated out, or
	// compromised) stops verifying new tokens. Default 1h.
	RefreshInterval Duration `yaml:"refresh_interval"`
	// FetchTimeout bounds one JWKS or discovery fetch. Default 5s.
	FetchTimeout Duration `yaml:"fetch_timeout"`
	// AllowInsecureHTTP permits plain-http jwks_uri (and, with discovery, issuer)
	// URLs on hosts other than loopback. Keys fetched without TLS can be forged
	// in transit, so this is only for a trusted network. Default false.
	AllowInsecureHTTP bool `yaml:"allow_insecure_http"`
	// IntrospectionEndpoint is the RFC 7662 endpoint that opaque umbrella
	// tokens are sent to (with discovery, read from the metadata when empty).
	IntrospectionEndpoint string `yaml:"introspection_endpoint"`
	// Introspection, when set, makes this issuer introspect opaque tokens.
	Introspection *Introspection `yaml:"introspection"`
}

// Exchange configures how single-audience tokens are obtained.
type Exchange struct {
	// Mode is local (tokengate signs) or remote (an RFC 8693 STS signs). Default local.
	Mode string `yaml:"mode"`
	// TokenTTL is the upper bound on an exchanged token's lifetime. Default 5m.
	TokenTTL Duration `yaml:"token_ttl"`
	Local    Local    `yaml:"local"`
	Remote   Remote   `yaml:"remote"`
}

// Mode values for Exchange.Mode.
const (
	ModeLocal  = "local"
	ModeRemote = "remote"
)

// Local configures the built-in signer.
type Local struct {
	// Issuer is the iss of exchanged tokens; discovery is served under it.
	// Default "http://" + server.admin_listen.
	Issuer string `yaml:"issuer"`
	// SigningKeys: the first signs, all are published in the JWKS.
	SigningKeys []SigningKey `yaml:"signing_keys"`
	// CopyClaims are copied from the umbrella token when present.
	// Default [sub, client_id, azp, acr, amr, auth_time].
	CopyClaims []string `yaml:"copy_claims"`
}

// SigningKey is one PEM private key file.
type SigningKey struct {
	// File is a PEM private key: PKCS#8, SEC1 or PKCS#1.
	File string `yaml:"file"`
	// Alg is ES256, RS256, PS256 or EdDSA.
	Alg string `yaml:"alg"`
	// Kid defaults to the key's RFC 7638 thumbprint.
	Kid string `yaml:"kid"`
}

// Remote configures an external RFC 8693 STS (exchange.mode: remote).
type Remote struct {
	// TokenEndpoint is the STS's token endpoint; or set Issuer.
	TokenEndpoint string `yaml:"token_endpoint"`
	// Issuer, instead of TokenEndpoint, finds the token endpoint in the
	// STS's OIDC / RFC 8414 metadata.
	Issuer string `yaml:"issuer"`
	// ClientID is tokengate's client at the STS.
	ClientID string `yaml:"client_id"`
	// ClientSecret is for client_secret_basic and client_secret_post.
	ClientSecret string `yaml:"client_secret"`
	// AuthMethod is client_secret_basic (default), client_secret_post or
	// private_key_jwt.
	AuthMethod string `yaml:"auth_method"`
	// PrivateKey signs the RFC 7523 client assertion of private_key_jwt.
	PrivateKey SigningKey `yaml:"private_key"`
	// AssertionAudience is the aud of the client assertion. Default: the
	// token endpoint URL.
	AssertionAudience string `yaml:"assertion_audience"`
	// SubjectTokenType is the umbrella token's type URI. Default
	// urn:ietf:params:oauth:token-type:access_token.
	SubjectTokenType string `yaml:"subject_token_type"`
	// RequestedTokenType is the type URI asked for. Default
	// urn:ietf:params:oauth:token-type:access_token.
	RequestedTokenType string `yaml:"requested_token_type"`
	// Resource says when the RFC 8707 resource parameter is sent. Default false.
	Resource Resource `yaml:"resource"`
	// Timeout bounds one exchange, retries included. Default 2s.
	Timeout Duration `yaml:"timeout"`
	// AllowInsecureHTTP permits plain-http STS URLs on hosts other than
	// loopback. Default false.
	AllowInsecureHTTP bool `yaml:"allow_insecure_http"`
	// ExtraParams are form parameters added to every request to the STS
	// (exchanges and Txn-Token requests): what an STS needs beyond RFC 8693,
	// like Dex's connector_id or Keycloak's requested_issuer. They never
	// replace a parameter tokengate sets (validation refuses those names).
	ExtraParams map[string]string `yaml:"extra_params"`
}

// Cache configures the exchanged-token cache.
type Cache struct {
	// MaxEntries bounds the in-memory tier. Default 100000.
	MaxEntries int `yaml:"max_entries"`
	// RefreshBefore: an entry is not served this long before it expires. Default 30s.
	RefreshBefore Duration `yaml:"refresh_before"`
	// RevocationTTL is how long a revocation of a subject or session refuses
	// umbrella tokens issued before it: longer than any umbrella token lives.
	// Default 24h.
	RevocationTTL Duration `yaml:"revocation_ttl"`
	// Redis is the optional shared tier.
	Redis *Redis `yaml:"redis"`
}

// Redis configures the shared cache tier (docs/redis.md).
type Redis struct {
	// Addrs: one address (a single node), several (a cluster), or the
	// Sentinels' addresses when MasterName is set.
	Addrs []string `yaml:"addrs"`
	// MasterName selects Sentinel: the name of the monitored master.
	MasterName string `yaml:"master_name"`
	// Cluster forces cluster mode with a single seed address.
	Cluster  bool   `yaml:"cluster"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB is the database number (single node and Sentinel only).
	DB int `yaml:"db"`
	// KeyPrefix starts every key and the pub/sub channel. Default "tokengate:".
	KeyPrefix string `yaml:"key_prefix"`
	// EncryptionKey (base64 of 32 random bytes) encrypts every value. Required.
	EncryptionKey string `yaml:"encryption_key"`
	// PreviousEncryptionKeys still decrypt values written before a rotation.
	PreviousEncryptionKeys []string `yaml:"previous_encryption_keys"`
	// HashKey (base64 of 32 bytes) keys the hashes that name entries and the
	// cache keys every replica shares. Default: EncryptionKey. Pin it to the
	// first key when rotating, so no entry is renamed.
	HashKey string `yaml:"hash_key"`
	// TLS, when set, connects over TLS.
	TLS *RedisTLS `yaml:"tls"`
	// DialTimeout, ReadTimeout and WriteTimeout bound one connection attempt
	// and one read or write. Defaults 200ms, 200ms, 200ms.
	DialTimeout  Duration `yaml:"dial_timeout"`
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
	// PoolSize is the connections per node. Default 10 per CPU (go-redis).
	PoolSize int `yaml:"pool_size"`
	// Required makes /readyz fail while Redis does not answer. Default false:
	// Redis down is reported as degraded and requests go on without it.
	Required bool `yaml:"required"`
	// BreakerFailures consecutive failed calls make tokengate skip Redis for
	// BreakerBackoff, then probe it with one call. Defaults 5 and 5s.
	BreakerFailures int      `yaml:"breaker_failures"`
	BreakerBackoff  Duration `yaml:"breaker_backoff"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// CAFile is a PEM bundle of the CAs to trust; default the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate (mutual TLS), optional.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is checked against the server's certificate; default the
	// address's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate checks: testing only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Route is one upstream API behind the gateway.
type Route struct {
	// Name labels the route in metrics and logs.
	Name string `yaml:"name"`
	// Host, when set, must match the request's Host (without port).
	Host string `yaml:"host"`
	// PathPrefix is matched on whole path segments; the longest match wins.
	PathPrefix string `yaml:"path_prefix"`
	// StripPrefix removes PathPrefix before forwarding.
	StripPrefix bool `yaml:"strip_prefix"`
	// Upstream is the backend's base URL: http://, https:// (HTTP/2 by
	// ALPN, else HTTP/1.1) or h2c:// (cleartext HTTP/2, gRPC servers).
	Upstream string `yaml:"upstream"`
	// Audience is the single aud of the exchanged token.
	Audience string `yaml:"audience"`
	// Scopes are the scopes that belong to Audience (downscoping).
	Scopes []string `yaml:"scopes"`
	// ScopePrefix, when set, also makes every umbrella scope that starts with
	// it belong to Audience ("orders:" or "https://orders.example.com/").
	ScopePrefix string `yaml:"scope_prefix"`
	// StripScopePrefix carries those scopes without ScopePrefix in the
	// exchanged token ("orders:read" becomes "read"). Default false.
	StripScopePrefix bool `yaml:"strip_scope_prefix"`
	// RequiredScopes must all be in the umbrella token's scope.
	RequiredScopes []string `yaml:"required_scopes"`
	// AllowedClients is a client_id / azp allowlist; empty allows any client.
	AllowedClients []string `yaml:"allowed_clients"`
	// ACRValues: the token's acr must be one of these (RFC 9470).
	ACRValues []string `yaml:"acr_values"`
	// MaxAge: auth_time must be newer than this; 0 is no limit.
	MaxAge Duration `yaml:"max_age"`
	// Timeout bounds waiting for the upstream's response headers. Default 30s.
	Timeout Duration `yaml:"timeout"`
	// RequireDPoP refuses umbrella tokens not bound with cnf.jkt. Default false.
	RequireDPoP bool `yaml:"require_dpop"`
	// Forward is what reaches the upstream: access_token (default), txn_token
	// or both (config/txn.go).
	Forward string `yaml:"forward"`
	// CORS, when set, replaces the global cors block as a whole for this
	// route (keys it omits take the defaults); allowed_origins: [] turns
	// CORS off for the route (config/cors.go).
	CORS *CORS `yaml:"cors"`
	// TLS configures TLS to an https:// upstream; nil uses the system
	// roots and the upstream's host name (docs/tls.md).
	TLS *UpstreamTLS `yaml:"tls"`
}

// UpstreamTLS configures TLS to one route's https:// upstream. Every file is
// reloaded when it changes on disk, without a restart.
type UpstreamTLS struct {
	// CAFile is a PEM bundle of the CAs to trust; it replaces the system
	// roots for this upstream. Default: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate (mutual TLS), optional.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is sent as SNI and is the name the upstream's certificate
	// must hold; never taken from the request's Host. Default: the
	// upstream URL's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate checks: testing only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// TokenEndpoint returns the configured RFC 8693 endpoint path ("" when disabled).
func (s Server) TokenEndpoint() string {
	if s.TokenEndpointPath == nil {
		return DefaultTokenEndpointPath
	}
	return *s.TokenEndpointPath
}

// Duration is a time.Duration written in YAML as a Go duration string ("30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText parses a Go duration string. A bare number is refused: "30"
// is ambiguous (seconds? nanoseconds?), so the error asks for a unit.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: write it with a unit, like 30s or 5m", string(b))
	}
	*d = Duration(v)
	return nil
}
