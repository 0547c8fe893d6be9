package config

import (
	"strings"
	"time"
)

// Introspection limits.
const (
	maxIntrospectionTimeout  = 30 * time.Second
	maxIntrospectionCacheTTL = time.Hour
	maxIntrospectionEntries  = 10_000_000
)

// introspection checks issuers[].introspection_endpoint and
// issuers[].introspection (docs/introspection.md).
func (v *validator) introspection() {
	first := -1
	for i, is := range v.c.Issuers {
		p := indexPath("issuers", i)
		in := is.Introspection
		if in == nil {
			if is.IntrospectionEndpoint != "" {
				v.add(p+".introspection_endpoint", "is set, but introspection is not: add introspection: "+
					"{client_id: ..., client_secret: ...} with tokengate's client at the authorization server, "+
					"or remove introspection_endpoint")
			}
			continue
		}
		if first >= 0 {
			v.addf(p+".introspection", "is also set on issuers[%d]: only one issuer may introspect, because an "+
				"opaque token carries no iss to tell which issuer to ask; keep introspection on one issuer", first)
		} else {
			first = i
		}
		switch {
		case is.IntrospectionEndpoint != "":
			v.introspectionURL(p+".introspection_endpoint", is.IntrospectionEndpoint, is.AllowInsecureHTTP)
		case !is.Discovery:
			v.add(p+".introspection_endpoint", "is not set, and discovery is not true: set it to the authorization "+
				"server's RFC 7662 endpoint, like https://idp.example.com/oauth2/introspect, or discovery: true "+
				"to read it from the issuer's metadata")
		}
		if in.JWTResponse && is.JWKSURI == "" && !is.Discovery {
			v.add(p+".introspection.jwt_response", "is true, but the issuer has no keys to verify the signed "+
				"responses with: set jwks_uri or discovery: true on the issuer, or jwt_response: false")
		}
		v.clientAuth(p+".introspection", oauthClient{
			id: in.ClientID, secret: in.ClientSecret, method: in.AuthMethod, key: in.PrivateKey,
			peer: "the authorization server", secretEnv: "INTROSPECTION_CLIENT_SECRET", keyFile: "keys/introspection-client.pem",
		})
		v.introspectionLimits(p+".introspection", *in)
	}
}

// introspectionURL checks a URL that client credentials and umbrella tokens
// are sent to.
func (v *validator) introspectionURL(path, raw string, allowInsecure bool) {
	const example = "https://idp.example.com/oauth2/introspect"
	u, msg := httpURL(raw, example)
	switch {
	case msg != "":
	case u.Fragment != "" || strings.Contains(raw, "#"):
		msg = showURL(u) + " has a fragment (#...): remove it"
	case u.Scheme == "http" && !allowInsecure && !isLoopback(u.Hostname()):
		msg = showURL(u) + " uses plain http: the client credentials and every opaque umbrella token would cross " +
			"the network unencrypted; use https, or set allow_insecure_http: true on this issuer if the network is trusted"
	}
	if msg != "" {
		v.add(path, msg)
	}
}

// introspectionLimits checks the timeout and the cache bounds.
func (v *validator) introspectionLimits(p string, in Introspection) {
	switch {
	case in.Timeout <= 0:
		v.addf(p+".timeout", "%s is not positive: set how long one introspection call may take, like %s",
			in.Timeout, DefaultIntrospectionTimeout)
	case in.Timeout.D() > maxIntrospectionTimeout:
		v.addf(p+".timeout", "%s is too long: a request waits for the call; use at most %s, a few seconds like %s is usual",
			in.Timeout, maxIntrospectionTimeout, DefaultIntrospectionTimeout)
	}
	if in.CacheMaxEntries < 1 || in.CacheMaxEntries > maxIntrospectionEntries {
		v.addf(p+".cache_max_entries", "%d is out of range: use 1 to %d (default %d)",
			in.CacheMaxEntries, maxIntrospectionEntries, DefaultIntrospectionCacheMaxEntries)
	}
	switch {
	case in.MaxCacheTTL <= 0:
		v.addf(p+".max_cache_ttl", "%s is not positive: set how long an active result may be reused, like %s "+
			"(a revoked token stays accepted up to this long)", in.MaxCacheTTL, DefaultIntrospectionMaxCacheTTL)
	case in.MaxCacheTTL.D() > maxIntrospectionCacheTTL:
		v.addf(p+".max_cache_ttl", "%s is too long: a revoked token stays accepted up to this long; use at most %s",
			in.MaxCacheTTL, maxIntrospectionCacheTTL)
	}
	switch {
	case in.NegativeCacheTTL < 0:
		v.addf(p+".negative_cache_ttl", "%s is negative: use 0s (no caching of inactive results) or more, like %s",
			in.NegativeCacheTTL, DefaultIntrospectionNegativeCacheTTL)
	case in.NegativeCacheTTL.D() > maxIntrospectionCacheTTL:
		v.addf(p+".negative_cache_ttl", "%s is too long: a token that becomes active stays refused up to this long; "+
			"use at most %s", in.NegativeCacheTTL, maxIntrospectionCacheTTL)
	}
}
