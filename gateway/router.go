package gateway

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/tokengate/tokengate/config"
)

// defaultRouteTimeout applies when a route has no timeout (config defaults
// normally fill it in).
const defaultRouteTimeout = config.DefaultRouteTimeout

// route is one compiled config.Route.
type route struct {
	name        string
	match       routeMatch
	stripPrefix bool
	upstream    *url.URL // nil: decided only through authz
	// cors is the route's CORS policy (its own block, else the global
	// one); nil when CORS is off for it.
	cors    *corsPolicy
	policy  routePolicy
	timeout time.Duration

	transport *http.Transport
	proxy     *routeProxy
	// h2c: the upstream speaks cleartext HTTP/2 (upstream h2c://); upstream
	// is then its http:// form.
	h2c bool
	// tlsConfig is the upstream's TLS client configuration (routes[].tls),
	// nil for the defaults.
	tlsConfig *tls.Config
	obs       routeObservers
	txn       *routeTxn // nil unless forward is txn_token or both
}

// buildRoutes compiles the configured routes, naming the key path of any
// route that cannot be used.
func buildRoutes(cfgs []config.Route) ([]*route, error) {
	routes := make([]*route, 0, len(cfgs))
	seen := make(map[string]int, len(cfgs))
	for i, c := range cfgs {
		key := fmt.Sprintf("routes[%d]", i)
		// A route without upstream is decided only through authz (config
		// allows it only then); the edge answers 404 for it.
		var (
			u   *url.URL
			h2c bool
		)
		if c.Upstream != "" {
			var err error
			if u, h2c, err = parseUpstream(c.Upstream); err != nil {
				return nil, fmt.Errorf("%s.upstream: %w", key, err)
			}
		}
		match, err := newRouteMatch(key, c)
		if err != nil {
			return nil, err
		}
		policy, err := newRoutePolicy(key, c)
		if err != nil {
			return nil, err
		}
		rt := &route{
			name:        c.Name,
			match:       match,
			stripPrefix: c.StripPrefix,
			upstream:    u,
			h2c:         h2c,
			policy:      policy,
			timeout:     c.Timeout.D(),
		}
		rt.policy.self = target{audience: rt.policy.audience, routes: []*route{rt}}
		if rt.name == "" {
			rt.name = key
		}
		if rt.timeout <= 0 {
			rt.timeout = defaultRouteTimeout
		}
		id := rt.match.host + " " + rt.match.prefix
		if j, dup := seen[id]; dup {
			return nil, fmt.Errorf("%s.path_prefix: routes[%d] already serves host %q and path_prefix %q: give one of them another host or prefix", key, j, c.Host, c.PathPrefix)
		}
		seen[id] = i
		routes = append(routes, rt)
	}
	return routes, nil
}

// newRouter registers the routes on a gorilla/mux router in match order:
// longest prefix first, then host-specific before any-host, then file order.
// mux tries routes in registration order, so the first match is the longest
// prefix. mux's own path cleaning is off: canonicalRequest cleans the path
// once, and the same cleaned path is matched and forwarded.
func newRouter(routes []*route) *mux.Router {
	ordered := slices.Clone(routes)
	slices.SortStableFunc(ordered, func(a, b *route) int {
		if c := cmp.Compare(len(b.match.prefix), len(a.match.prefix)); c != 0 {
			return c
		}
		return cmp.Compare(boolInt(a.match.host == ""), boolInt(b.match.host == ""))
	})
	r := mux.NewRouter().SkipClean(true)
	for _, rt := range ordered {
		r.NewRoute().MatcherFunc(rt.match.matches).Handler(rt)
	}
	return r
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ServeHTTP is never called: the gateway takes the matched *route from
// mux.RouteMatch.Handler. It exists so a route can be registered on mux.
func (rt *route) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "internal routing error", http.StatusInternalServerError)
}

// match returns the route for r, or nil. r must have gone through
// canonicalRequest.
func (g *Gateway) match(r *http.Request) *route {
	if r.Method == http.MethodConnect {
		return nil // a tunnel is never a route
	}
	var m mux.RouteMatch
	if !g.router.Match(r, &m) {
		return nil
	}
	rt, _ := m.Handler.(*route)
	return rt
}

// forwardPath returns the path (and raw path) sent upstream, before it is
// joined to the upstream URL's path: with strip_prefix, the route prefix is
// removed, keeping a leading "/".
func (rt *route) forwardPath(u *url.URL) (p, raw string) {
	if !rt.stripPrefix || rt.match.prefix == "/" {
		return u.Path, u.RawPath
	}
	p = strings.TrimPrefix(u.Path, rt.match.prefix)
	if p == "" {
		p = "/"
	}
	if u.RawPath == "" {
		return p, ""
	}
	// Keep the client's encoding (e.g. %20; checkPath has refused %2F) when
	// the prefix appears literally in it; otherwise fall back to the decoded
	// path.
	escPrefix := (&url.URL{Path: rt.match.prefix}).EscapedPath()
	if hasSegmentPrefix(u.RawPath, escPrefix) {
		raw = strings.TrimPrefix(u.RawPath, escPrefix)
		if raw == "" {
			raw = "/"
		}
		return p, raw
	}
	return p, ""
}
