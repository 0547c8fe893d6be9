package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/tokengate/tokengate/config"
)

// CORS (docs/browser.md). The decision owns it: decide answers an allowed
// preflight (no token needed, nothing forwarded) and refuses one that is
// not allowed, and records which policy applies, so the edge can label
// every response, its own errors included.
//
// The matcher is written here rather than taken from github.com/rs/cors:
// rs/cors answers a preflight it does not allow with a 204 without CORS
// headers (tokengate answers 403), decides and writes in one call, and only
// exposes the origin check, whereas the gateway must decide first (on the
// matched route's policy) and write later, on the proxied response, on its
// own error responses, or not at all (authz answers carry no CORS headers).

// corsPolicy is one compiled cors block.
type corsPolicy struct {
	anyOrigin   bool
	origins     map[string]struct{}
	methods     map[string]struct{} // exact (methods are case-sensitive)
	headers     map[string]struct{} // lower case
	credentials bool
	// Precomputed header values.
	allowMethods, allowHeaders, exposed, maxAge string
}

// newCORSPolicy compiles a block; nil when the block is absent or allows
// no origin (CORS off).
func newCORSPolicy(b *config.CORS) *corsPolicy {
	if b == nil || len(b.AllowedOrigins) == 0 {
		return nil
	}
	p := &corsPolicy{
		origins:      make(map[string]struct{}, len(b.AllowedOrigins)),
		methods:      make(map[string]struct{}, len(b.AllowedMethods)),
		headers:      make(map[string]struct{}, len(b.AllowedHeaders)),
		credentials:  b.AllowCredentials,
		allowMethods: strings.Join(b.AllowedMethods, ", "),
		allowHeaders: strings.Join(b.AllowedHeaders, ", "),
		exposed:      strings.Join(b.ExposedHeaders, ", "),
		maxAge:       strconv.FormatInt(int64(b.MaxAge.D().Seconds()), 10),
	}
	for _, o := range b.AllowedOrigins {
		if o == "*" {
			p.anyOrigin = true
		}
		p.origins[o] = struct{}{}
	}
	for _, m := range b.AllowedMethods {
		p.methods[m] = struct{}{}
	}
	for _, h := range b.AllowedHeaders {
		p.headers[strings.ToLower(h)] = struct{}{}
	}
	return p
}

// allowsOrigin reports whether origin (one Origin header value) is allowed.
// "null" (sandboxed frames, file: pages) is allowed only if listed.
func (p *corsPolicy) allowsOrigin(origin string) bool {
	if origin == "" {
		return false
	}
	if _, ok := p.origins[origin]; ok {
		return true
	}
	return p.anyOrigin && origin != "null"
}

// allowOriginValue is Access-Control-Allow-Origin for an allowed origin:
// "*" when any origin is allowed without credentials, else the origin.
func (p *corsPolicy) allowOriginValue(origin string) string {
	if _, listed := p.origins[origin]; p.anyOrigin && !listed && !p.credentials {
		return "*"
	}
	return origin
}

// allowsRequest reports whether a preflight's method and every header it
// names are allowed.
func (p *corsPolicy) allowsRequest(method, headers []string) bool {
	if len(method) != 1 {
		return false
	}
	if _, ok := p.methods[method[0]]; !ok {
		return false
	}
	for _, v := range headers {
		for h := range strings.SplitSeq(v, ",") {
			h = strings.ToLower(strings.Trim(h, " \t"))
			if h == "" {
				continue
			}
			if _, ok := p.headers[h]; !ok {
				return false
			}
		}
	}
	return true
}

// errCORSPreflight: a preflight the route's CORS policy does not allow.
var errCORSPreflight = errors.New("the CORS preflight is not allowed for this origin, method or headers")

// isPreflight reports a CORS preflight: OPTIONS with Origin and
// Access-Control-Request-Method.
func isPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && len(r.Header["Origin"]) > 0 &&
		len(r.Header["Access-Control-Request-Method"]) > 0
}

// decideCORS is the CORS step of decide for the matched route: an allowed
// preflight is decided here (st.preflight), one that is not allowed is
// errCORSPreflight; any other request with an allowed Origin records the
// policy so every response can carry the CORS headers. On a route without
// CORS nothing happens: a preflight is an ordinary request.
func (g *Gateway) decideCORS(r *http.Request, st *requestState) error {
	p := st.route.cors
	if p == nil {
		return nil
	}
	origins := r.Header["Origin"]
	origin := ""
	if len(origins) == 1 && p.allowsOrigin(origins[0]) {
		origin = origins[0]
	}
	if isPreflight(r) {
		if origin == "" || !p.allowsRequest(r.Header["Access-Control-Request-Method"], r.Header["Access-Control-Request-Headers"]) {
			return errCORSPreflight
		}
		st.preflight = true
	}
	if origin != "" {
		st.cors, st.corsOrigin = p, origin
	}
	return nil
}

// corsHeaders labels an edge response for an allowed origin: the gateway's
// own errors and the upstream's responses alike (upstreamResponse drops
// the upstream's Access-Control-* headers, so these are never doubled). A
// preflight's headers are written by writePreflight.
func (g *Gateway) corsHeaders(h http.Header, st *requestState) {
	p := st.cors
	if p == nil || st.preflight {
		return
	}
	h.Set("Access-Control-Allow-Origin", p.allowOriginValue(st.corsOrigin))
	h.Add("Vary", "Origin")
	if p.exposed != "" {
		h.Set("Access-Control-Expose-Headers", p.exposed)
	}
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// writePreflight answers an allowed preflight at the edge: 204, nothing
// forwarded.
func writePreflight(w http.ResponseWriter, st *requestState) {
	p := st.cors
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", p.allowOriginValue(st.corsOrigin))
	h.Set("Access-Control-Allow-Methods", p.allowMethods)
	if p.allowHeaders != "" {
		h.Set("Access-Control-Allow-Headers", p.allowHeaders)
	}
	h.Set("Access-Control-Max-Age", p.maxAge)
	if p.credentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	w.WriteHeader(http.StatusNoContent)
}

// dropUpstreamCORS removes an upstream's Access-Control-* headers from a
// response the gateway labels itself (or from any response on a route
// whose policy does not allow the origin: an upstream's
// Access-Control-Allow-Credentials must not survive the gateway's policy).
func dropUpstreamCORS(h http.Header) {
	for k := range h {
		if len(k) > 15 && strings.EqualFold(k[:15], "Access-Control-") {
			delete(h, k)
		}
	}
}
