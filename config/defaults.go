package config

import (
	"fmt"
	"time"
)

// Every default lives here. A default fills a key the file leaves out (or
// sets to null); a key the file sets, even to zero or "", keeps its value and
// is validated, so `leeway: 0s` means no leeway and `copy_claims: []` means
// copy nothing.

// DefaultTokenEndpointPath is server.token_endpoint_path when the key is absent.
const DefaultTokenEndpointPath = "/oauth2/token"

// Server defaults.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultAdminListen       = "127.0.0.1:9090"
	DefaultMaxTokenBytes     = 8192
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout       = 10 * time.Second
	DefaultMaxHeaderBytes    = 65536
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownGrace     = 25 * time.Second
)

// Log defaults.
const (
	DefaultLogLevel  = "info"
	DefaultLogFormat = "json"
)

// Issuer defaults.
const (
	DefaultLeeway             = 30 * time.Second
	DefaultMinRefreshInterval = 10 * time.Second
	DefaultRefreshInterval    = time.Hour
	DefaultFetchTimeout       = 5 * time.Second
)

// DefaultAlgorithms is issuers[].algorithms when absent: every asymmetric JWS
// algorithm. A new slice each call, so no caller can change the default.
func DefaultAlgorithms() []string { return AsymmetricAlgorithms() }

// Exchange defaults.
const (
	DefaultMode     = ModeLocal
	DefaultTokenTTL = 5 * time.Minute
)

// DefaultCopyClaims is exchange.local.copy_claims when absent. A new slice
// each call.
func DefaultCopyClaims() []string {
	return []string{"sub", "client_id", "azp", "acr", "amr", "auth_time"}
}

// Remote STS defaults (exchange.remote).
const (
	DefaultAuthMethod    = "client_secret_basic"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	DefaultRemoteTimeout = 2 * time.Second
)

// Cache defaults.
const (
	DefaultMaxEntries     = 100000
	DefaultRefreshBefore  = 30 * time.Second
	DefaultRedisKeyPrefix = "tokengate:"
	DefaultRevocationTTL  = 24 * time.Hour
)

// Redis tier defaults (cache.redis): short, so Redis never holds a request up.
const (
	DefaultRedisDialTimeout     = 200 * time.Millisecond
	DefaultRedisReadTimeout     = 200 * time.Millisecond
	DefaultRedisWriteTimeout    = 200 * time.Millisecond
	DefaultRedisBreakerFailures = 5
	DefaultRedisBreakerBackoff  = 5 * time.Second
)

// DefaultRouteTimeout is routes[].timeout when absent.
const DefaultRouteTimeout = 30 * time.Second

// Tracing defaults (tracing).
const (
	DefaultSampleRatio = 1.0
	DefaultServiceName = "tokengate"
)

// applyDefaults fills every key the file left out. Server.TokenEndpointPath
// stays nil: Server.TokenEndpoint applies its default, so that an explicit ""
// (disabled) remains distinguishable.
func (c *Config) applyDefaults() {
	s := &c.Server
	setDefault(c, &s.Listen, "server.listen", DefaultListen)
	setDefault(c, &s.AdminListen, "server.admin_listen", DefaultAdminListen)
	setDefault(c, &s.MaxTokenBytes, "server.max_token_bytes", DefaultMaxTokenBytes)
	setDefault(c, &s.ReadHeaderTimeout, "server.read_header_timeout", Duration(DefaultReadHeaderTimeout))
	setDefault(c, &s.BodyTimeout, "server.body_timeout", Duration(DefaultBodyTimeout))
	setDefault(c, &s.MaxHeaderBytes, "server.max_header_bytes", DefaultMaxHeaderBytes)
	setDefault(c, &s.IdleTimeout, "server.idle_timeout", Duration(DefaultIdleTimeout))
	setDefault(c, &s.ShutdownGrace, "server.shutdown_grace", Duration(DefaultShutdownGrace))
	c.applyDPoPDefaults()

	setDefault(c, &c.Log.Level, "log.level", DefaultLogLevel)
	setDefault(c, &c.Log.Format, "log.format", DefaultLogFormat)

	for i := range c.Issuers {
		is, p := &c.Issuers[i], fmt.Sprintf("issuers[%d].", i)
		setDefaultList(c, &is.Algorithms, p+"algorithms", DefaultAlgorithms)
		setDefault(c, &is.Leeway, p+"leeway", Duration(DefaultLeeway))
		setDefault(c, &is.MinRefreshInterval, p+"min_refresh_interval", Duration(DefaultMinRefreshInterval))
		setDefault(c, &is.RefreshInterval, p+"refresh_interval", Duration(DefaultRefreshInterval))
		setDefault(c, &is.FetchTimeout, p+"fetch_timeout", Duration(DefaultFetchTimeout))
		applyIntrospectionDefaults(c, i)
	}

	e := &c.Exchange
	setDefault(c, &e.Mode, "exchange.mode", DefaultMode)
	setDefault(c, &e.TokenTTL, "exchange.token_ttl", Duration(DefaultTokenTTL))
	setDefault(c, &e.Local.Issuer, "exchange.local.issuer", "http://"+s.AdminListen)
	setDefaultList(c, &e.Local.CopyClaims, "exchange.local.copy_claims", DefaultCopyClaims)
	setDefault(c, &e.Remote.AuthMethod, "exchange.remote.auth_method", DefaultAuthMethod)
	setDefault(c, &e.Remote.SubjectTokenType, "exchange.remote.subject_token_type", TokenTypeAccessToken)
	setDefault(c, &e.Remote.RequestedTokenType, "exchange.remote.requested_token_type", TokenTypeAccessToken)
	setDefault(c, &e.Remote.Timeout, "exchange.remote.timeout", Duration(DefaultRemoteTimeout))

	setDefault(c, &c.Cache.MaxEntries, "cache.max_entries", DefaultMaxEntries)
	setDefault(c, &c.Cache.RefreshBefore, "cache.refresh_before", Duration(DefaultRefreshBefore))
	setDefault(c, &c.Cache.RevocationTTL, "cache.revocation_ttl", Duration(DefaultRevocationTTL))
	if r := c.Cache.Redis; r != nil {
		setDefault(c, &r.KeyPrefix, "cache.redis.key_prefix", DefaultRedisKeyPrefix)
		setDefault(c, &r.DialTimeout, "cache.redis.dial_timeout", Duration(DefaultRedisDialTimeout))
		setDefault(c, &r.ReadTimeout, "cache.redis.read_timeout", Duration(DefaultRedisReadTimeout))
		setDefault(c, &r.WriteTimeout, "cache.redis.write_timeout", Duration(DefaultRedisWriteTimeout))
		setDefault(c, &r.BreakerFailures, "cache.redis.breaker_failures", DefaultRedisBreakerFailures)
		setDefault(c, &r.BreakerBackoff, "cache.redis.breaker_backoff", Duration(DefaultRedisBreakerBackoff))
	}

	for i := range c.Routes {
		setDefault(c, &c.Routes[i].Timeout, fmt.Sprintf("routes[%d].timeout", i), Duration(DefaultRouteTimeout))
		setDefault(c, &c.Routes[i].Forward, fmt.Sprintf("routes[%d].forward", i), ForwardAccessToken)
	}
	c.applyCORSDefaults()
	setDefault(c, &c.TxnToken.WorkloadID, "txn_token.workload_id", DefaultTxnWorkloadID)
	setDefault(c, &c.TxnToken.TTL, "txn_token.ttl", Duration(DefaultTxnTTL))
	setDefault(c, &c.Tracing.SampleRatio, "tracing.sample_ratio", DefaultSampleRatio)
	setDefault(c, &c.Tracing.ServiceName, "tracing.service_name", DefaultServiceName)
}

// setDefault sets *v to def when it is zero and the file did not set it.
func setDefault[T comparable](c *Config, v *T, path string, def T) {
	var zero T
	if *v == zero && !c.isSet(path) {
		*v = def
	}
}

// setDefaultList sets *v to def() when it is empty and the file did not set it.
func setDefaultList(c *Config, v *[]string, path string, def func() []string) {
	if len(*v) == 0 && !c.isSet(path) {
		*v = def()
	}
}
