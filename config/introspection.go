package config

import (
	"fmt"
	"time"
)

// Introspection configures RFC 7662 token introspection of an issuer's
// opaque umbrella tokens (docs/introspection.md). Its endpoint is
// Issuer.IntrospectionEndpoint, or the issuer's metadata with discovery.
type Introspection struct {
	// ClientID is tokengate's client at the authorization server.
	ClientID string `yaml:"client_id"`
	// ClientSecret is for client_secret_basic and client_secret_post.
	ClientSecret string `yaml:"client_secret"`
	// AuthMethod is client_secret_basic (default), client_secret_post or
	// private_key_jwt.
	AuthMethod string `yaml:"auth_method"`
	// PrivateKey signs the RFC 7523 client assertion of private_key_jwt.
	PrivateKey SigningKey `yaml:"private_key"`
	// JWTResponse asks for a signed RFC 9701 response
	// (application/token-introspection+jwt), verified with the issuer's keys.
	// Default false.
	JWTResponse bool `yaml:"jwt_response"`
	// Timeout bounds one introspection call. Default 2s.
	Timeout Duration `yaml:"timeout"`
	// CacheMaxEntries bounds the introspection cache. Default 10000.
	CacheMaxEntries int `yaml:"cache_max_entries"`
	// MaxCacheTTL: an active result is cached until the earlier of its exp
	// and now + MaxCacheTTL. A revoked token stays accepted up to this long.
	// Default 5m.
	MaxCacheTTL Duration `yaml:"max_cache_ttl"`
	// NegativeCacheTTL is how long an inactive result is cached, to shield
	// the authorization server from repeated bad tokens. Default 10s.
	NegativeCacheTTL Duration `yaml:"negative_cache_ttl"`
}

// Introspection defaults (issuers[].introspection).
const (
	DefaultIntrospectionTimeout          = 2 * time.Second
	DefaultIntrospectionCacheMaxEntries  = 10000
	DefaultIntrospectionMaxCacheTTL      = 5 * time.Minute
	DefaultIntrospectionNegativeCacheTTL = 10 * time.Second
)

// applyIntrospectionDefaults fills issuers[i].introspection's absent keys.
func applyIntrospectionDefaults(c *Config, i int) {
	in := c.Issuers[i].Introspection
	if in == nil {
		return
	}
	p := fmt.Sprintf("issuers[%d].introspection.", i)
	setDefault(c, &in.AuthMethod, p+"auth_method", DefaultAuthMethod)
	setDefault(c, &in.Timeout, p+"timeout", Duration(DefaultIntrospectionTimeout))
	setDefault(c, &in.CacheMaxEntries, p+"cache_max_entries", DefaultIntrospectionCacheMaxEntries)
	setDefault(c, &in.MaxCacheTTL, p+"max_cache_ttl", Duration(DefaultIntrospectionMaxCacheTTL))
	setDefault(c, &in.NegativeCacheTTL, p+"negative_cache_ttl", Duration(DefaultIntrospectionNegativeCacheTTL))
}

// IntrospectionOnly reports an issuer whose tokens are only introspected:
// it needs no key source (jwks_uri or discovery) unless it asks for signed
// (RFC 9701) responses.
func (is Issuer) IntrospectionOnly() bool {
	return is.Introspection != nil && !is.Introspection.JWTResponse && is.JWKSURI == "" && !is.Discovery
}
