package gateway

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokengate/tokengate/config"
)

// defaultRouteTimeout applies when a route has no timeout (config defaults
// normally fill it in).
const defaultRouteTimeout = config.DefaultRouteTimeout

// routeUpstream is where an allowed request on a route goes, and how: the
// upstream URL, its protocol and TLS client configuration, the response
// header timeout, the prefix removed from the path (strip_prefix), and the
// transport and reverse proxy built from them (proxy.go). It forwards what
// decide allowed, as the request state carries it; it knows nothing of
// tokens, policy or how the route was matched. A route decided only through
// authz has none.
type routeUpstream struct {
	url *url.URL
	// h2c: the upstream speaks cleartext HTTP/2 (upstream h2c://); url is
	// then its http:// form.
	h2c bool
	// tlsConfig is the upstream's TLS client configuration (routes[].tls),
	// nil for the defaults.
	tlsConfig *tls.Config
	timeout   time.Duration
	// stripPrefix is the path prefix removed before forwarding: the route's
	// path_prefix, normalised, with strip_prefix; "" when nothing is
	// removed (no strip_prefix, or the prefix is "/").
	stripPrefix string
	transport   *http.Transport
	proxy       *routeProxy
}

// newRouteUpstream compiles the upstream of the route at key; nil when it
// has none. A route without upstream is decided only through authz (config
// allows it only then); the edge answers 404 for it.
func newRouteUpstream(key string, c config.Route) (*routeUpstream, error) {
	if c.Upstream == "" {
		return nil, nil
	}
	u, h2c, err := parseUpstream(c.Upstream)
	if err != nil {
		return nil, fmt.Errorf("%s.upstream: %w", key, err)
	}
	up := &routeUpstream{url: u, h2c: h2c, timeout: c.Timeout.D()}
	if up.timeout <= 0 {
		up.timeout = defaultRouteTimeout
	}
	if p := normalizePrefix(c.PathPrefix); c.StripPrefix && p != "/" {
		up.stripPrefix = p
	}
	return up, nil
}

// forwardPath returns the path (and raw path) sent upstream, before it is
// joined to the upstream URL's path: with strip_prefix, the route prefix is
// removed, keeping a leading "/".
func (up *routeUpstream) forwardPath(u *url.URL) (p, raw string) {
	if up.stripPrefix == "" {
		return u.Path, u.RawPath
	}
	p = strings.TrimPrefix(u.Path, up.stripPrefix)
	if p == "" {
		p = "/"
	}
	if u.RawPath == "" {
		return p, ""
	}
	// Keep the client's encoding (e.g. %20; checkPath has refused %2F) when
	// the prefix appears literally in it; otherwise fall back to the decoded
	// path.
	escPrefix := (&url.URL{Path: up.stripPrefix}).EscapedPath()
	if hasSegmentPrefix(u.RawPath, escPrefix) {
		raw = strings.TrimPrefix(u.RawPath, escPrefix)
		if raw == "" {
			raw = "/"
		}
		return p, raw
	}
	return p, ""
}
