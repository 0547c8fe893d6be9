package gateway

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The authz adapters: a proxy in front (ingress-nginx, Traefik, Envoy,
// Istio) asks tokengate to decide a request it holds, and forwards it
// itself (docs/ingress.md). Both adapters build the original request and
// hand it to decide, like the edge; they only translate the answer.
//
// Trust: these listeners believe the original-request headers they are
// sent (method, host, URI), so only the proxy may reach them
// (authz.listen and authz.grpc_listen are never the edge's address;
// docs/ingress.md shows the NetworkPolicy). The client's address for logs
// and a Txn-Token's rctx follows server.trusted_proxies as at the edge.

// Authz protocols, the protocol label of the authz metrics.
const (
	authzHTTP = "http"
	authzGRPC = "grpc"
)

// errBadOriginal: the proxy described an original request that cannot be
// parsed; answered like any malformed path (400 invalid_request).
var errBadOriginal = &pathError{description: "the original request's URI is malformed"}

// originalRequest builds the request a decision is about from what a
// proxy says of it: method, host, target (path and query as the client
// sent them) and the client's headers; peer is the proxy's address and
// https the scheme the client used.
func originalRequest(ctx context.Context, peer, method, host, target string, header http.Header, https bool) (*http.Request, error) {
	if target == "" || target[0] != '/' {
		return nil, errBadOriginal
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		// checkPath names the rule a path breaks; anything else is simply
		// malformed.
		if perr := checkPath(rawPathOf(target)); perr != nil {
			return nil, perr
		}
		return nil, errBadOriginal
	}
	in := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
		Host:       host,
		RemoteAddr: peer,
		RequestURI: target,
		Body:       http.NoBody,
	}
	if https {
		// Only the scheme matters to a decision (a Txn-Token's rctx).
		in.TLS = &tls.ConnectionState{}
	}
	return in.WithContext(ctx), nil
}

// Original-request headers of forward-auth, in the order the contract
// reads them (section 9).
const (
	headerFwdMethod  = "X-Forwarded-Method" // Traefik
	headerFwdHost    = "X-Forwarded-Host"
	headerFwdURI     = "X-Forwarded-Uri"   // Traefik
	headerOrigMethod = "X-Original-Method" // ingress-nginx, nginx auth_request
	headerOrigURL    = "X-Original-Url"    // ingress-nginx
	headerOrigURI    = "X-Original-Uri"    // nginx auth_request
)

// Original-request headers that disagree: a proxy sets one family and
// passes the client's own headers on (nginx and ingress-nginx send every
// client header to the auth request), so a second family present with
// another value is a client's, describing a request it is not making.
var (
	errOriginalMethod = &pathError{"the original request's method is given twice, differently (" + headerFwdMethod + ", " + headerOrigMethod + ")", ReasonOriginal}
	errOriginalHost   = &pathError{"the original request's host is given twice, differently (" + headerFwdHost + ", the host of " + headerOrigURL + ")", ReasonOriginal}
	errOriginalTarget = &pathError{"the original request's path is given twice, differently (" + headerFwdURI + ", " + headerOrigURL + ", " + headerOrigURI + ")", ReasonOriginal}
	errOriginalRepeat = &pathError{"an original-request header is sent more than once", ReasonOriginal}
)

// forwardAuthOriginal reads the original request of a forward-auth call
// (contract section 9): the first present of each source. Every other
// header present for the same part must say the same (exactly; the host
// without regard to case), else the call is refused (400, reason
// original): the headers a client adds are passed on by nginx and
// ingress-nginx, and believing the first present would let a client have
// one request decided while the proxy forwards another with the token
// minted for the first. The request's own method, Host and path are the
// proxy's call to the authz listener, not the client's request: they are
// only the last fallback and are not compared, except under
// authz.path_prefix (Envoy's http_service, which calls with the original
// method and the original path behind the prefix), where the own method
// and path are the last sources and compared like the others.
func (g *Gateway) forwardAuthOriginal(r *http.Request) (*http.Request, error) {
	h := r.Header
	for _, name := range [...]string{headerFwdMethod, headerFwdHost, headerFwdURI, headerOrigMethod, headerOrigURL, headerOrigURI} {
		if len(h[name]) > 1 {
			return nil, errOriginalRepeat
		}
	}
	origURL := h.Get(headerOrigURL)
	var ou *url.URL
	if origURL != "" {
		var err error
		if ou, err = url.Parse(origURL); err != nil || ou.Host == "" {
			return nil, errBadOriginal
		}
	}
	// Under authz.path_prefix the call is Envoy's http_service, whose own
	// method and path (less the prefix) are the original request's: then
	// they are sources too, the last ones, and headers must agree with them.
	own, envoy := g.prefixedTarget(r.RequestURI)
	ownMethod := ""
	if envoy {
		ownMethod = r.Method
	}
	method, ok := agreed(h.Get(headerFwdMethod), h.Get(headerOrigMethod), ownMethod)
	if !ok {
		return nil, errOriginalMethod
	}
	if method == "" {
		method = r.Method
	}
	host := h.Get(headerFwdHost)
	if ou != nil {
		if host != "" && !strings.EqualFold(host, ou.Host) {
			return nil, errOriginalHost
		}
		if host == "" {
			host = ou.Host
		}
	}
	if host == "" {
		host = r.Host
	}
	ownTarget := ""
	if envoy {
		ownTarget = own
	}
	target, ok := agreed(h.Get(headerFwdURI), originTargetOf(origURL), h.Get(headerOrigURI), ownTarget)
	if !ok {
		return nil, errOriginalTarget
	}
	if target == "" {
		target = own
	}
	scheme := h.Get("X-Forwarded-Proto")
	if scheme == "" && ou != nil {
		scheme = ou.Scheme
	}
	https := strings.EqualFold(scheme, "https") || (scheme == "" && r.TLS != nil)
	return originalRequest(r.Context(), r.RemoteAddr, method, host, target, h, https)
}

// agreed returns the first non-empty value, and false when another
// non-empty value differs from it.
func agreed(vals ...string) (string, bool) {
	first := ""
	for _, v := range vals {
		switch {
		case v == "":
		case first == "":
			first = v
		case v != first:
			return "", false
		}
	}
	return first, true
}

// prefixedTarget is the forward-auth call's own target less
// authz.path_prefix (matched on a whole segment), and whether the prefix
// was there; without it, the target as it came.
func (g *Gateway) prefixedTarget(target string) (string, bool) {
	p := g.authzPrefix
	if p == "" || !strings.HasPrefix(target, p) ||
		(len(target) != len(p) && target[len(p)] != '/' && target[len(p)] != '?') {
		return target, false
	}
	target = target[len(p):]
	if target == "" || target[0] == '?' {
		target = "/" + target
	}
	return target, true
}

// originTargetOf is originTarget of an X-Original-URL, "" when absent.
func originTargetOf(origURL string) string {
	if origURL == "" {
		return ""
	}
	return originTarget(origURL)
}

// originTarget is the path and query of an absolute URL as written
// ("http://h/a%2Fb?q" gives "/a%2Fb?q"), without its fragment: the raw
// spelling, so the path rules see what the client sent.
func originTarget(abs string) string {
	i := strings.Index(abs, "://")
	if i < 0 {
		return ""
	}
	rest := abs[i+3:]
	j := strings.IndexAny(rest, "/?#")
	if j < 0 {
		return "/"
	}
	rest = rest[j:]
	if k := strings.IndexByte(rest, '#'); k >= 0 {
		rest = rest[:k]
	}
	if rest == "" || rest[0] != '/' {
		rest = "/" + rest
	}
	return rest
}

// newAuthzState starts the record of one authz decision.
func (g *Gateway) newAuthzState(w http.ResponseWriter, header http.Header) *requestState {
	st := &requestState{start: g.clock()}
	st.from = entryAuthz
	st.rw.ResponseWriter = w
	st.requestID = requestID(header)
	w.Header().Set(headerRequestID, st.requestID)
	return st
}

// decideAuthz runs decide for an authz adapter and records the decision
// (metrics, access log). It returns nil when allowed, else the response to
// deny with.
func (g *Gateway) decideAuthz(in *http.Request, st *requestState, protocol string) *response {
	var resp *response
	if _, err := g.decide(in, st); err != nil {
		r := g.failure(in, st, err)
		resp = &r
	}
	status := http.StatusOK
	if resp != nil {
		status = resp.status
	}
	name := noRouteLabel
	if st.route != nil {
		name = st.route.name
	}
	elapsed := g.clock().Sub(st.start)
	g.metrics.AuthzDecisions.WithLabelValues(name, strconv.Itoa(status), protocol).Inc()
	g.metrics.AuthzDuration.WithLabelValues(protocol).Observe(elapsed.Seconds())
	g.logRequest(in, st, name, status, elapsed, protocol)
	return resp
}

// ServeAuthz is the HTTP forward-auth adapter (authz.listen; any method,
// any path). Allowed: 200, empty body, Authorization: Bearer <exchanged>
// and/or Txn-Token per the route's forward, X-Request-Id. Denied: the
// status, WWW-Authenticate and JSON body the edge would send. An allowed
// CORS preflight is 200 without Authorization. No Access-Control-* header:
// the ingress owns the response path and its CORS.
func (g *Gateway) ServeAuthz(w http.ResponseWriter, r *http.Request) {
	st := g.newAuthzState(w, r.Header)
	in, err := g.forwardAuthOriginal(r)
	if err != nil {
		resp := g.failure(r, st, err)
		g.metrics.AuthzDecisions.WithLabelValues(noRouteLabel, strconv.Itoa(resp.status), authzHTTP).Inc()
		g.logRequest(r, st, noRouteLabel, resp.status, g.clock().Sub(st.start), authzHTTP)
		writeResponse(w, resp)
		return
	}
	if resp := g.decideAuthz(in, st, authzHTTP); resp != nil {
		if !resp.silent {
			writeResponse(w, *resp)
		}
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if st.exchanged != "" {
		h.Set("Authorization", "Bearer "+st.exchanged)
	}
	if st.txnToken != "" {
		h.Set(headerTxnToken, st.txnToken)
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}
