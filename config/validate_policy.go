package config

import (
	"fmt"
	"strings"
)

// Route names that are metric labels of the gateway itself: the token
// endpoint's requests and requests that matched no route.
const (
	ReservedRouteTokenEndpoint = "token_endpoint"
	ReservedRouteNone          = "_none"
)

// publicURL checks server.public_url: the edge's base URL as clients see it.
func (v *validator) publicURL() {
	raw := v.c.Server.PublicURL
	if raw == "" {
		return
	}
	const example = "https://api.example.com"
	u, msg := httpURL(raw, example)
	if msg == "" {
		msg = queryOrFragment(u, raw)
	}
	if msg != "" {
		v.add("server.public_url", msg)
	}
}

// tokenEndpointPathProblem checks a non-empty server.token_endpoint_path
// beyond its first character: the request path is cleaned before it is
// matched, so a path with dot segments or "//" could never be reached.
func tokenEndpointPathProblem(p string) string {
	if strings.Contains(p, "//") || hasDotSegment(p) {
		return fmt.Sprintf(`%s is not a clean path: write it without "//", "." or ".." segments, like %s`,
			quote(p), DefaultTokenEndpointPath)
	}
	return ""
}

// samePathFolded reports whether the token endpoint's path and a route's
// path_prefix name the same path once trailing slashes, "." segments and
// letter case are folded. The gateway matches the token endpoint exactly and
// before any route, so a route on the same path would lose its root; the
// case-folded twin is refused too, because upstreams that ignore case would
// see "/Token" and "/token" as one path while the gateway sees two.
func samePathFolded(endpoint, prefix string) bool {
	return strings.EqualFold(foldPath(endpoint), foldPath(prefix))
}

// foldPath drops "." segments, empty segments and the trailing "/".
func foldPath(p string) string {
	var segs []string
	for seg := range strings.SplitSeq(p, "/") {
		if seg != "" && seg != "." {
			segs = append(segs, seg)
		}
	}
	return "/" + strings.Join(segs, "/")
}

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// routePolicy checks what a route adds to the per-API policy: scope_prefix,
// strip_scope_prefix, reserved names and the token endpoint's path.
func (v *validator) routePolicy(p string, r Route) {
	if r.Name == ReservedRouteTokenEndpoint || r.Name == ReservedRouteNone {
		v.addf(p+".name", "%s is reserved: the gateway labels its own requests with it in metrics; name the route otherwise",
			quote(r.Name))
	}
	if ep := v.c.Server.TokenEndpoint(); ep != "" && r.PathPrefix != "" && samePathFolded(ep, r.PathPrefix) {
		v.addf(p+".path_prefix", "%s is server.token_endpoint_path: the token endpoint answers there, so the route "+
			"could never be reached; give the route another prefix, or move the endpoint with server.token_endpoint_path",
			quote(r.PathPrefix))
	}
	switch sp := r.ScopePrefix; {
	case sp == "":
		if r.StripScopePrefix {
			v.add(p+".strip_scope_prefix", "is true but scope_prefix is empty: set scope_prefix (like \"orders:\"), "+
				"or remove strip_scope_prefix")
		}
	case hasSpaceOrControl(sp):
		v.addf(p+".scope_prefix", "%s contains whitespace: a scope prefix is part of one scope word", quote(sp))
	case isAlphanumeric(sp[len(sp)-1]):
		v.addf(p+".scope_prefix", "%s does not end with a separator: write it like %s or %s, so that it "+
			"cannot also claim the scopes of another API (%s)", quote(sp), quote(sp+":"), quote("https://"+sp+".example.com/"),
			quote(sp+"x:read"))
	}
}

func isAlphanumeric(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
