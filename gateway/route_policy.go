package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// routePolicy is who may use a route and what a token carries there: the
// audience its tokens are exchanged for, the umbrella scopes it owns
// (downscope), the access rules a token must meet (required_scopes,
// allowed_clients, acr_values, max_age) and require_dpop. It reads verified
// claims only; it knows nothing of the request's host or path, nor of the
// upstream.
type routePolicy struct {
	audience    string
	scopes      map[string]struct{} // the audience's scopes, for downscoping
	scopePrefix string              // umbrella scopes with this prefix belong here too
	stripScope  bool                // carry those without scopePrefix
	rules       policy
	// self is the target of an edge request on this route: its audience,
	// and its own policy alone. buildRoutes sets it, since it names the
	// route.
	self target
	// requireDPoP refuses umbrella tokens without cnf.jkt (require_dpop).
	requireDPoP bool
}

// newRoutePolicy compiles the audience, scopes and access rules of the
// route at key.
func newRoutePolicy(key string, c config.Route) (routePolicy, error) {
	if c.Audience == "" {
		return routePolicy{}, fmt.Errorf("%s.audience: is empty: every route needs the audience its tokens are exchanged for", key)
	}
	rp := routePolicy{
		audience:    c.Audience,
		scopes:      make(map[string]struct{}, len(c.Scopes)),
		scopePrefix: c.ScopePrefix,
		stripScope:  c.StripScopePrefix && c.ScopePrefix != "",
		rules:       newPolicy(c),
		requireDPoP: c.RequireDPoP,
	}
	for _, s := range c.Scopes {
		rp.scopes[s] = struct{}{}
	}
	return rp, nil
}

// policyKind says which part of a route's policy a token failed.
type policyKind int

const (
	// policyClient: client_id / azp not in allowed_clients (403 unauthorized_client).
	policyClient policyKind = iota + 1
	// policyScope: a required_scopes entry is missing (403 insufficient_scope).
	policyScope
	// policyAuthentication: acr_values or max_age not met (401, RFC 9470).
	policyAuthentication
)

// reasonPolicy is the rejection label of every policy failure.
const reasonPolicy = "policy"

// policyError is a policy failure carrying what its response needs.
type policyError struct {
	kind          policyKind
	route         string
	description   string
	missingScopes []string // policyScope
	// policyAuthentication: the route's requirements, sent back so the client
	// knows what a new authentication must satisfy. Only what the route
	// configures is set.
	acrValues string        // space-separated, "" when not configured
	maxAge    time.Duration // 0 when not configured
}

func (e *policyError) Error() string {
	return fmt.Sprintf("route %s policy: %s", e.route, e.description)
}

// response is the RFC 6750 / RFC 9470 answer for the failure.
func (e *policyError) response() response {
	switch e.kind {
	case policyClient:
		return response{
			status:      http.StatusForbidden,
			challenge:   `Bearer error="insufficient_scope"`,
			code:        "unauthorized_client",
			description: e.description,
			reason:      reasonPolicy,
		}
	case policyScope:
		missing := strings.Join(e.missingScopes, " ")
		return response{
			status:       http.StatusForbidden,
			challenge:    `Bearer error="insufficient_scope", scope=` + quote(missing),
			code:         "insufficient_scope",
			description:  e.description,
			reason:       reasonPolicy,
			missingScope: missing,
		}
	default:
		challenge := `Bearer error="insufficient_user_authentication", error_description=` + quote(e.description)
		if e.acrValues != "" {
			challenge += ", acr_values=" + quote(e.acrValues)
		}
		if e.maxAge > 0 {
			challenge += `, max_age="` + strconv.FormatInt(int64(e.maxAge/time.Second), 10) + `"`
		}
		return response{
			status:      http.StatusUnauthorized,
			challenge:   challenge,
			code:        "insufficient_user_authentication",
			description: e.description,
			reason:      reasonPolicy,
			acrValues:   e.acrValues,
			maxAge:      int64(e.maxAge / time.Second),
		}
	}
}

// policy is a route's compiled access policy.
type policy struct {
	route          string
	requiredScopes []string
	allowedClients []string
	acrValues      []string
	acrHeader      string // acrValues joined with spaces
	maxAge         time.Duration
}

func newPolicy(c config.Route) policy {
	return policy{
		route:          c.Name,
		requiredScopes: slices.Clone(c.RequiredScopes),
		allowedClients: slices.Clone(c.AllowedClients),
		acrValues:      slices.Clone(c.ACRValues),
		acrHeader:      strings.Join(c.ACRValues, " "),
		maxAge:         c.MaxAge.D(),
	}
}

// check applies the policy in a fixed order: the client (a wrong client
// cannot fix anything by asking again), then required scopes, then the
// user's authentication (acr, max_age). now is the gateway's clock.
func (p *policy) check(c *exchange.Claims, now time.Time) error {
	if id := clientOf(c); len(p.allowedClients) > 0 && (id == "" || !slices.Contains(p.allowedClients, id)) {
		return &policyError{kind: policyClient, route: p.route, description: "the client is not allowed on this route"}
	}

	var missing []string
	for _, s := range p.requiredScopes {
		if !slices.Contains(c.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return &policyError{
			kind:          policyScope,
			route:         p.route,
			description:   "the token lacks a scope this route requires",
			missingScopes: missing,
		}
	}

	var why string
	switch {
	case len(p.acrValues) > 0 && (c.ACR == "" || !slices.Contains(p.acrValues, c.ACR)):
		why = "the authentication context class (acr) is not one this route accepts"
	case p.maxAge > 0 && c.AuthTime.IsZero():
		why = "the token has no auth_time and this route limits the authentication age"
	case p.maxAge > 0 && now.Sub(c.AuthTime) > p.maxAge:
		why = "the authentication is older than this route's max_age"
	default:
		return nil
	}
	return &policyError{
		kind:        policyAuthentication,
		route:       p.route,
		description: why,
		acrValues:   p.acrHeader,
		maxAge:      p.maxAge,
	}
}

// downscope returns the umbrella scopes that belong to the route's
// audience, as the exchanged token carries them: those listed in scopes,
// and those that start with scope_prefix (without it, with
// strip_scope_prefix). Deduplicated and sorted (they are part of the
// exchange cache key); nil when none.
func (rp *routePolicy) downscope(umbrella []string) []string {
	var out []string
	for _, s := range umbrella {
		if name, ok := rp.owns(s); ok {
			if out == nil {
				out = make([]string, 0, len(umbrella))
			}
			out = append(out, name)
		}
	}
	if len(out) < 2 {
		return out
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// owns reports whether umbrella scope s belongs to the route, and the name
// the exchanged token carries for it. The prefix rule comes first: with
// strip_scope_prefix, "orders:read" is carried as "read" even when scopes
// also lists it. A scope that is only the prefix names nothing.
func (rp *routePolicy) owns(s string) (string, bool) {
	if p := rp.scopePrefix; p != "" && len(s) > len(p) && strings.HasPrefix(s, p) {
		if rp.stripScope {
			return s[len(p):], true
		}
		return s, true
	}
	_, ok := rp.scopes[s]
	return s, ok
}

// intersectSorted keeps the entries of a (sorted, deduplicated) that are
// also in b (sorted, deduplicated). nil when none.
func intersectSorted(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); found {
			out = append(out, s)
		}
	}
	return out
}

// clientOf is the token's client: client_id, else azp. (The verifier already
// folds azp into ClientID; a claims value built elsewhere may not.)
func clientOf(c *exchange.Claims) string {
	if c.ClientID != "" {
		return c.ClientID
	}
	return c.AZP
}
