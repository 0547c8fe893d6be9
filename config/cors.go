package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// CORS is a cors block: the global one, or a route's (which replaces the
// global one as a whole). Keys a block omits take the defaults below.
type CORS struct {
	// AllowedOrigins are exact origins (scheme://host[:port]); "*" allows
	// any origin (never with AllowCredentials). Empty: CORS is off.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowedMethods a preflight may ask for. Default GET, HEAD, POST,
	// PUT, PATCH, DELETE.
	AllowedMethods []string `yaml:"allowed_methods"`
	// AllowedHeaders a preflight may ask for (case-insensitive). Default
	// Authorization, Content-Type, DPoP, X-Request-Id.
	AllowedHeaders []string `yaml:"allowed_headers"`
	// ExposedHeaders the browser lets the app read. Default
	// WWW-Authenticate, X-Request-Id, DPoP-Nonce.
	ExposedHeaders []string `yaml:"exposed_headers"`
	// AllowCredentials sends Access-Control-Allow-Credentials: true
	// (cookies, TLS client certificates). Default false.
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge is how long a browser may cache a preflight. Default 10m.
	MaxAge Duration `yaml:"max_age"`
}

// CORS defaults (contract section 8).
const DefaultCORSMaxAge = 10 * time.Minute

// DefaultCORSMethods is cors.allowed_methods when absent (a new slice each call).
func DefaultCORSMethods() []string {
	return []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
}

// DefaultCORSHeaders is cors.allowed_headers when absent.
func DefaultCORSHeaders() []string {
	return []string{"Authorization", "Content-Type", "DPoP", "X-Request-Id"}
}

// DefaultCORSExposed is cors.exposed_headers when absent.
func DefaultCORSExposed() []string {
	return []string{"WWW-Authenticate", "X-Request-Id", "DPoP-Nonce"}
}

func (c *Config) applyCORSDefaults() {
	apply := func(b *CORS, p string) {
		if b == nil {
			return
		}
		setDefaultList(c, &b.AllowedMethods, p+".allowed_methods", DefaultCORSMethods)
		setDefaultList(c, &b.AllowedHeaders, p+".allowed_headers", DefaultCORSHeaders)
		setDefaultList(c, &b.ExposedHeaders, p+".exposed_headers", DefaultCORSExposed)
		setDefault(c, &b.MaxAge, p+".max_age", Duration(DefaultCORSMaxAge))
	}
	apply(c.CORS, "cors")
	for i := range c.Routes {
		apply(c.Routes[i].CORS, fmt.Sprintf("routes[%d].cors", i))
	}
}

// CORSFor is the CORS block that applies to route i: its own, else the
// global one; nil (or no allowed origin) means off.
func (c *Config) CORSFor(i int) *CORS {
	if b := c.Routes[i].CORS; b != nil {
		return b
	}
	return c.CORS
}

func (v *validator) cors() {
	v.corsBlock("cors", v.c.CORS)
	for i, r := range v.c.Routes {
		v.corsBlock(indexPath("routes", i)+".cors", r.CORS)
	}
}

func (v *validator) corsBlock(p string, b *CORS) {
	if b == nil {
		return
	}
	wildcard := false
	for i, o := range b.AllowedOrigins {
		ip := indexPath(p+".allowed_origins", i)
		if o == "*" {
			wildcard = true
			continue
		}
		if msg := originProblem(o); msg != "" {
			v.add(ip, msg)
		}
	}
	if wildcard && b.AllowCredentials {
		v.add(p+".allow_credentials", `is true while allowed_origins holds "*": browsers refuse credentials `+
			`with any origin; list the exact origins, or set allow_credentials: false`)
	}
	for i, m := range b.AllowedMethods {
		if !isHTTPToken(m) {
			v.addf(indexPath(p+".allowed_methods", i), "%s is not an HTTP method: write it like GET", quote(m))
		}
	}
	for _, list := range []struct {
		key  string
		vals []string
	}{{"allowed_headers", b.AllowedHeaders}, {"exposed_headers", b.ExposedHeaders}} {
		for i, h := range list.vals {
			if !isHTTPToken(h) {
				v.addf(indexPath(p+"."+list.key, i), "%s is not a header name: write it like Content-Type", quote(h))
			}
		}
	}
	if b.MaxAge < 0 {
		v.addf(p+".max_age", "%s is negative: use how long browsers may cache a preflight, like 10m", b.MaxAge)
	}
}

// originProblem checks one allowed origin: scheme://host[:port], as a
// browser sends it in Origin (no path, no trailing "/").
func originProblem(o string) string {
	const example = "https://www.example.com"
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(o, "/") {
		return fmt.Sprintf(`%s is not an origin: write scheme://host[:port] without a path or a trailing "/", like %s, or "*"`, quote(o), example)
	}
	if o != strings.ToLower(o) {
		return fmt.Sprintf("%s has upper-case letters: browsers send origins in lower case; write %s", quote(o), quote(strings.ToLower(o)))
	}
	return ""
}

// isHTTPToken reports whether s is an RFC 9110 token (a method or a
// header name).
func isHTTPToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
