package gateway

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"

	"github.com/gorilla/mux"

	"github.com/tokengate/tokengate/config"
)

// route is one compiled config.Route, in three parts that each know only
// their own job: where it applies (match, route_match.go), who may use it
// and with what (policy, route_policy.go) and where an allowed request
// goes (upstream, route_upstream.go). Beside them sit the edge's CORS
// answer, the Txn-Token it forwards and its metrics.
type route struct {
	name     string
	match    routeMatch
	policy   routePolicy
	upstream *routeUpstream // nil: decided only through authz
	// cors is the route's CORS policy (its own block, else the global
	// one); nil when CORS is off for it.
	cors *corsPolicy
	obs  routeObservers
	txn  *routeTxn // nil unless forward is txn_token or both
}

// buildRoutes compiles the configured routes, naming the key path of any
// route that cannot be used.
func buildRoutes(cfgs []config.Route) ([]*route, error) {
	routes := make([]*route, 0, len(cfgs))
	seen := make(map[string]int, len(cfgs))
	for i, c := range cfgs {
		key := fmt.Sprintf("routes[%d]", i)
		up, err := newRouteUpstream(key, c)
		if err != nil {
			return nil, err
		}
		m, err := newRouteMatch(key, c)
		if err != nil {
			return nil, err
		}
		pol, err := newRoutePolicy(key, c)
		if err != nil {
			return nil, err
		}
		rt := &route{name: c.Name, match: m, policy: pol, upstream: up}
		rt.policy.self = target{audience: rt.policy.audience, routes: []*route{rt}}
		if rt.name == "" {
			rt.name = key
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
