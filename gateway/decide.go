package gateway

import (
	"net/http"

	"github.com/tokengate/tokengate/exchange"
)

// The decision core. Every entry point (the edge proxy, the token endpoint,
// HTTP forward-auth, Envoy ext_authz) hands the ORIGINAL request to decide
// and maps what it returns to its own protocol; no adapter checks anything
// the others do not. The original request is an *http.Request because it
// carries exactly what a decision needs: the method, the Host, the target as
// the client sent it (RequestURI, raw), the headers, the peer (RemoteAddr)
// and the scheme (TLS). The authz adapters build one from the proxy's
// description of the request it holds (authz.go).

// entry is the kind of adapter asking for a decision.
type entry uint8

const (
	// entryEdge: the edge listener, which also serves the token endpoint
	// and forwards to the route's upstream.
	entryEdge entry = iota
	// entryAuthz: a forward-auth or ext_authz listener; a proxy in front
	// forwards, so decision-only routes (no upstream) are decided too and
	// the DPoP htu never comes from tokengate's own listener.
	entryAuthz
)

// decision is what decide concludes about one allowed request: which route
// it is for, and what the request that goes upstream carries instead of
// the client's credentials. The exchanged token and the Txn-Token are only
// ever sent upstream (or handed to the proxy that sends them upstream).
type decision struct {
	// from is the adapter that asked.
	from entry
	// in is the original request as received (htm, htu before cleaning,
	// the proof header); canonical is in with a clean path, as matched.
	in *http.Request
	// route is the matched route; nil at the token endpoint.
	route *route
	// endpoint: the request is for the token endpoint (edge only), which
	// decides for an audience target through the same authorize.
	endpoint bool
	// preflight: a CORS preflight the route's policy allows; nothing else
	// was decided (no token is needed).
	preflight bool
	// cors is the CORS policy that applies (the route's, else the global
	// one) and corsOrigin the request's Origin when that policy allows it.
	cors       *corsPolicy
	corsOrigin string

	requestID string
	// scheme is the Authorization scheme (schemeBearer or schemeDPoP).
	scheme string
	// exchanged is the exchanged token (forward access_token or both),
	// exReq what it was exchanged for (dropped when the upstream refuses it).
	exchanged string
	exReq     exchange.Request
	// txnToken is the Txn-Token (forward txn_token or both).
	txnToken string
}

// upstreamHeaders applies the decision to the headers of the request that
// goes upstream: Authorization becomes the exchanged token (or goes, on a
// txn_token route), Txn-Token is set when minted, the client's DPoP proof is
// removed, and X-Request-Id is the decision's. The umbrella token never
// leaves.
func (d *decision) upstreamHeaders(h http.Header) {
	if d.exchanged != "" {
		h.Set("Authorization", "Bearer "+d.exchanged)
	} else {
		h.Del("Authorization")
	}
	if d.txnToken != "" {
		h.Set(headerTxnToken, d.txnToken)
	} else {
		h.Del(headerTxnToken)
	}
	h.Del(headerDPoP)
	h.Set(headerRequestID, d.requestID)
}

// decide is THE decision for one original request: path rules, route match
// (with the fold rule), the CORS preflight, credentials (Bearer | DPoP and
// its proof), verification, revocation, DPoP binding, policy, step-up,
// exchange and Txn-Token minting. It fills st's decision and returns the
// request with a clean path (what the edge matches and forwards), or one
// error for the adapter to map (errorResponse). At the edge, a request for
// the token endpoint stops after the path rules with st.endpoint set: the
// endpoint reads its subject token from the body and authorizes it for an
// audience target (serveToken).
func (g *Gateway) decide(in *http.Request, st *requestState) (*http.Request, error) {
	st.in = in
	// The path rules hold before any route is matched (gateway/path.go).
	if err := checkPath(requestPath(in)); err != nil {
		return in, err
	}
	r := canonicalRequest(in)
	// The token endpoint is matched exactly and before the routes, so no
	// route (not even path_prefix "/") can shadow it.
	if st.from == entryEdge && g.tokenPath != "" && r.URL.Path == g.tokenPath {
		st.endpoint = true
		return r, nil
	}
	rt := g.match(r)
	if err := g.checkFold(r.Host, r.URL.Path, rt); err != nil {
		return r, err
	}
	if rt == nil || (rt.upstream == nil && st.from == entryEdge) {
		// A route without upstream is decided only through authz.
		return r, errNoRoute
	}
	st.route = rt
	if err := g.decideCORS(r, st); err != nil || st.preflight {
		return r, err
	}

	scheme, raw, err := requestCredentials(r)
	st.scheme = scheme
	if err != nil {
		return r, g.withDPoPChallenge(err, st, scheme)
	}
	if err := g.authorizeEdge(r.Context(), raw, r, rt, st); err != nil {
		return r, g.withDPoPChallenge(err, st, scheme)
	}
	return r, nil
}
