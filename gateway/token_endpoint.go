package gateway

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// tokenEndpointLabel is the route label of token endpoint requests in
// metrics and the access log (config reserves it as a route name).
const tokenEndpointLabel = config.ReservedRouteTokenEndpoint

// formOverhead is what a token request body may hold besides the subject
// token: the other parameters, with room to spare.
const formOverhead = 8 << 10

// newTokenEndpoint prepares the RFC 8693 endpoint at path ("" disables it):
// one target per audience, holding every route of that audience.
func (g *Gateway) newTokenEndpoint(path string) error {
	if path == "" {
		return nil
	}
	g.tokenPath = path
	g.tokenFold = foldPath(path)
	g.tokenObs = sync.OnceValue(func() *routeObservers {
		obs := g.metrics.forEndpoint(tokenEndpointLabel)
		return &obs
	})
	g.audiences = make(map[string]*target)
	for i, rt := range g.routes {
		if rt.match.prefix == strings.TrimRight(path, "/") {
			return fmt.Errorf("routes[%d].path_prefix: %q is the token endpoint's path: the route could never be reached", i, rt.match.prefix)
		}
		t := g.audiences[rt.policy.audience]
		if t == nil {
			t = &target{audience: rt.policy.audience}
			g.audiences[rt.policy.audience] = t
		}
		t.routes = append(t.routes, rt)
	}
	return nil
}

// tokenResponse is a successful RFC 8693 response (section 2.2.1).
type tokenResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

// serveToken answers one token endpoint request through the edge's own
// path (grant): the same verification, policy, downscoping and cache.
func (g *Gateway) serveToken(r *http.Request, st *requestState) {
	w := &st.rw
	treq, err := g.readTokenRequest(w, r)
	if err != nil {
		g.fail(w, r, st, &tokenEndpointError{err})
		return
	}
	t := g.audiences[treq.audience]
	if t == nil {
		g.fail(w, r, st, &tokenEndpointError{badTokenRequest("invalid_target",
			"the audience (or resource) is not an API behind this gateway: use the audience of a configured route")})
		return
	}
	res, err := g.grant(r.Context(), treq.subjectToken, t, treq.scopes, st)
	if err != nil {
		g.fail(w, r, st, &tokenEndpointError{redact(err, treq.subjectToken)})
		return
	}
	issued, ok := issuedType(res, treq.requestedType)
	if !ok {
		g.fail(w, r, st, &tokenEndpointError{badTokenRequest("invalid_request",
			"the requested_token_type cannot be issued: omit it to get an access token")})
		return
	}
	body, err := json.Marshal(tokenResponse{
		AccessToken:     res.AccessToken,
		IssuedTokenType: issued,
		TokenType:       "Bearer",
		ExpiresIn:       max(int64(res.ExpiresAt.Sub(g.clock())/time.Second), 0),
		Scope:           res.Scope,
	})
	if err != nil { // strings and a number: cannot happen
		g.fail(w, r, st, fmt.Errorf("token response: %w", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

// readTokenRequest checks the method and content type and parses a body of
// bounded size, read in bounded time (readBody: 413, 408). Only the body is
// read: parameters in the query string are ignored, so a token put there is
// never used, and an access_token there is refused (RFC 6750 section 3.1:
// one way of sending a credential; a URL leaks it).
func (g *Gateway) readTokenRequest(w http.ResponseWriter, r *http.Request) (tokenRequest, error) {
	if r.Method != http.MethodPost {
		return tokenRequest{}, &tokenRequestError{status: http.StatusMethodNotAllowed, code: "invalid_request",
			description: "the token endpoint accepts only POST"}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return tokenRequest{}, badTokenRequest("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	if queryHasAccessToken(r.URL.RawQuery) {
		return tokenRequest{}, badTokenRequest("invalid_request",
			"an access_token query parameter is not accepted: tokens never go in the URL; send subject_token in the body")
	}
	body, err := readBody(w, r, int64(g.maxTokenBytes)+formOverhead, g.bodyTimeout)
	if err != nil {
		return tokenRequest{}, err
	}
	return parseTokenForm(string(body))
}

// issuedType is the issued_token_type to report: the exchanger's, or jwt
// when the client asked for a JWT and the access token is one (a JWT access
// token is both). ok is false when the request cannot be met.
func issuedType(res *exchange.Result, requested string) (string, bool) {
	got := res.IssuedTokenType
	if got == "" {
		got = exchange.TokenTypeAccessToken
	}
	switch {
	case requested == "" || requested == got:
		return got, true
	case requested == exchange.TokenTypeJWT && got == exchange.TokenTypeAccessToken && strings.Count(res.AccessToken, ".") == 2:
		return exchange.TokenTypeJWT, true
	case requested == exchange.TokenTypeAccessToken && got == exchange.TokenTypeJWT:
		return exchange.TokenTypeAccessToken, true // a JWT used as a bearer access token
	}
	return "", false
}
