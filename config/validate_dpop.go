package config

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// DPoP limits.
const (
	maxDPoPMaxAge        = 10 * time.Minute
	maxDPoPLeeway        = time.Minute
	minDPoPNonceLifetime = 10 * time.Second
	maxDPoPNonceLifetime = time.Hour
	maxDPoPReplayEntries = 10_000_000
)

// dpop checks server.dpop.
func (v *validator) dpop() {
	const p = "server.dpop."
	d := v.c.Server.DPoP
	if len(d.Algorithms) == 0 {
		v.add(p+"algorithms", "is empty: list proof algorithms like [ES256, EdDSA], or remove the key for every asymmetric one")
	}
	seen := map[string]int{}
	for i, a := range d.Algorithms {
		path := indexPath(p+"algorithms", i)
		switch first, dup := seen[a]; {
		case !IsAsymmetricAlgorithm(a):
			v.addf(path, "%s is not an asymmetric JWS algorithm: use one of %s (none and HS* are never accepted)",
				quote(a), strings.Join(AsymmetricAlgorithms(), ", "))
		case dup:
			v.addf(path, "%s is also algorithms[%d]: list each algorithm once", quote(a), first)
		default:
			seen[a] = i
		}
	}
	if m := d.MaxAge.D(); m <= 0 || m > maxDPoPMaxAge {
		v.addf(p+"max_age", "%s is out of range: use more than 0s and at most %s (default %s)", d.MaxAge, maxDPoPMaxAge, DefaultDPoPMaxAge)
	}
	if l := d.Leeway.D(); l < 0 || l > maxDPoPLeeway {
		v.addf(p+"leeway", "%s is out of range: use 0s to %s (default %s)", d.Leeway, maxDPoPLeeway, DefaultDPoPLeeway)
	}
	if n := d.NonceLifetime.D(); n < minDPoPNonceLifetime || n > maxDPoPNonceLifetime {
		v.addf(p+"nonce_lifetime", "%s is out of range: use %s to %s (default %s)", d.NonceLifetime,
			minDPoPNonceLifetime, maxDPoPNonceLifetime, DefaultDPoPNonceLifetime)
	}
	if n := d.ReplayMaxEntries; n < 1 || n > maxDPoPReplayEntries {
		v.addf(p+"replay_max_entries", "%d is out of range: use 1 to %d (default %d)", n, maxDPoPReplayEntries, DefaultDPoPReplayMaxEntries)
	}
	if v.c.Server.dpopBaseKnown() {
		return
	}
	for i, r := range v.c.Routes {
		if r.RequireDPoP && r.Host == "" {
			v.add(indexPath("routes", i)+".require_dpop", "DPoP proofs cannot be checked on this route: "+htuFix)
		}
	}
}

// htuFix says how to give the gateway the URL DPoP proofs must name.
const htuFix = "the gateway does not know the URL clients use (htu), and never takes it from the Host header alone; " +
	"set server.public_url (like https://api.example.com), or server.trusted_proxies (the proxy's " +
	"X-Forwarded-Proto/-Host), or the route's host, or a concrete server.listen address like 127.0.0.1:8080"

// ListenAuthority returns server.listen's host and port when the host is
// concrete (a name or an address other than 0.0.0.0 / ::): then it is how
// clients reach the edge, and DPoP htu may be built from it. The port may
// be "0" (the listener picks one). ok is false for ":8080" or
// "0.0.0.0:8080", which say nothing about the URL clients use.
func (s Server) ListenAuthority() (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil || host == "" || port == "" {
		return "", "", false
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return "", "", false
	}
	return host, port, true
}

// dpopBaseKnown reports whether the edge can build a DPoP htu without a
// route's host: from public_url, a trusted proxy's headers or server.listen.
func (s Server) dpopBaseKnown() bool {
	_, _, concrete := s.ListenAuthority()
	return s.PublicURL != "" || len(s.TrustedProxies) > 0 || concrete
}

// DPoPWarnings are what `tokengate check` warns about but does not refuse:
// routes (and the token endpoint) where DPoP-bound tokens will be refused
// because no htu can be built for them. Each names its key and the fix.
func (c *Config) DPoPWarnings() []*FieldError {
	if c.Server.dpopBaseKnown() {
		return nil
	}
	var out []*FieldError
	for i, r := range c.Routes {
		if r.Host == "" && !r.RequireDPoP { // require_dpop is already a problem
			out = append(out, &FieldError{Path: indexPath("routes", i),
				Msg: fmt.Sprintf("route %s: DPoP-bound tokens will be refused: %s", quote(r.Name), htuFix)})
		}
	}
	if c.Server.TokenEndpoint() != "" {
		out = append(out, &FieldError{Path: "server.token_endpoint_path",
			Msg: "DPoP-bound subject tokens will be refused at the token endpoint: " + htuFix})
	}
	return out
}
