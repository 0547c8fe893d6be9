package gateway

import (
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/gorilla/mux"

	"github.com/tokengate/tokengate/config"
)

// routeMatch is where a route applies: its host and path prefix, and the
// path helpers that make matching exact (whole segments, clean paths, hosts
// without port). It reads only a request's Host and path; it knows nothing
// of tokens, policy or the upstream.
type routeMatch struct {
	host   string // lower case, without port; "" matches any host
	prefix string // normalised: leading "/", no trailing "/" unless it is "/"
	// foldedPrefix is prefix as a case-folding, dot-trimming backend reads
	// it (foldPath): the fold rule compares request paths with it.
	foldedPrefix string
}

// newRouteMatch compiles the host and path_prefix of the route at key.
func newRouteMatch(key string, c config.Route) (routeMatch, error) {
	if !strings.HasPrefix(c.PathPrefix, "/") {
		return routeMatch{}, fmt.Errorf("%s.path_prefix: %q must start with \"/\"", key, c.PathPrefix)
	}
	return routeMatch{
		host:         normalizeHost(c.Host),
		prefix:       normalizePrefix(c.PathPrefix),
		foldedPrefix: foldPath(normalizePrefix(c.PathPrefix)),
	}, nil
}

// matches is the mux matcher: host (case-insensitive, port ignored) and the
// path prefix on whole segments.
func (m *routeMatch) matches(r *http.Request, _ *mux.RouteMatch) bool {
	if m.host != "" && !hostEqual(r.Host, m.host) {
		return false
	}
	return hasSegmentPrefix(r.URL.Path, m.prefix)
}

// hasSegmentPrefix reports whether prefix covers p on whole segments:
// "/orders" covers "/orders", "/orders/" and "/orders/1" but not "/ordersx";
// "/" covers everything.
func hasSegmentPrefix(p, prefix string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(p, prefix) {
		return false
	}
	return len(p) == len(prefix) || p[len(prefix)] == '/'
}

// normalizePrefix drops a trailing "/" so "/orders/" and "/orders" name the
// same segment.
func normalizePrefix(p string) string {
	if len(p) > 1 {
		p = strings.TrimRight(p, "/")
		if p == "" {
			return "/"
		}
	}
	return p
}

func normalizeHost(h string) string {
	return strings.TrimRight(strings.ToLower(stripPort(h)), ".")
}

// hostEqual compares a request Host (which may carry a port, brackets or a
// trailing dot) with a normalised route host, case-insensitively.
func hostEqual(requestHost, routeHost string) bool {
	h := strings.TrimRight(stripPort(requestHost), ".")
	return strings.EqualFold(h, routeHost)
}

// stripPort removes ":port" and IPv6 brackets without allocating.
func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			return h[1:end]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}

// canonicalRequest returns r with a clean path: no empty, "." or ".."
// segments. Routing and forwarding both use this path, so "/orders/../admin"
// is matched, policed and forwarded as "/admin", and cannot reach the orders
// upstream under the orders policy. The decoded path is what is cleaned, so
// "%2e%2e" cannot hide a dot segment (checkPath has refused "%2F" already).
// Nothing is redirected (a redirect would echo the query string, which may
// hold an access_token, and turn a POST into a GET). Already-clean paths, the common case, cost nothing.
func canonicalRequest(r *http.Request) *http.Request {
	if isCleanPath(r.URL.Path) {
		return r
	}
	u := *r.URL
	u.Path = cleanPath(r.URL.Path)
	u.RawPath = "" // forward exactly the path that was matched
	r2 := r.WithContext(r.Context())
	r2.URL = &u
	return r2
}

// isCleanPath reports whether p starts with "/" and has no empty, "." or
// ".." segment (a trailing "/" is allowed).
func isCleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	start := 1 // just after the '/' that opens the current segment
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		seg := p[start:i]
		if seg == "." || seg == ".." {
			return false
		}
		if seg == "" && i < len(p) {
			return false // "//"
		}
		start = i + 1
	}
	return true
}

// cleanPath is path.Clean that keeps a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
