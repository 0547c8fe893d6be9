package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tokengate/tokengate/exchange"
)

// retryAfterSeconds is the Retry-After of 503 responses: long enough for a
// JWKS refresh or an STS blip, short enough that clients come back soon.
const retryAfterSeconds = "5"

// retryAfterConfigSeconds is the Retry-After of a 503 caused by the STS
// refusing tokengate's own request (exchange.ErrSTSConfig): only a
// configuration change fixes it, so clients that honour Retry-After should
// not come back every few seconds and multiply the refused calls.
const retryAfterConfigSeconds = "30"

// statusClientClosed is recorded (never written) when the client went
// away before a response could be made; nginx's convention.
const statusClientClosed = 499

// Errors the edge produces itself; each maps to one response in errorResponse.
var (
	errNoRoute       = errors.New("no route matches the request")
	errEmptyExchange = errors.New("the exchanger returned no token")
	errTokenTooLarge = exchange.Reject(exchange.ReasonTooLarge, "the access token is too large", nil)
)

// challengeRealm is the challenge of a request without credentials.
const challengeRealm = `Bearer realm="tokengate"`

// bearerError is a problem with the Authorization header. missing means no
// bearer credential at all (401 with a realm challenge); otherwise the
// header is malformed (400 invalid_request).
type bearerError struct {
	missing     bool
	description string
	reason      string // rejection reason, "" for an ordinary header problem
}

func (e *bearerError) Error() string { return "authorization header: " + e.description }

// upstreamError is a failed round trip to the route's upstream.
type upstreamError struct {
	timeout bool
	err     error
}

// Error leaves out the URL a *url.Error carries: it holds the request path,
// which does not belong in logs.
func (e *upstreamError) Error() string {
	var ue *url.Error
	if errors.As(e.err, &ue) {
		return "upstream " + ue.Op + ": " + ue.Err.Error()
	}
	return "upstream: " + e.err.Error()
}
func (e *upstreamError) Unwrap() error { return e.err }

func newUpstreamError(err error) error {
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	return &upstreamError{timeout: timeout, err: err}
}

// clientGoneError marks a failure after the client went away: nothing is
// written, the request is counted as 499.
type clientGoneError struct{ err error }

func (e *clientGoneError) Error() string { return "client went away: " + e.err.Error() }
func (e *clientGoneError) Unwrap() error { return e.err }

// redactedError keeps a raw token out of an error's text, so neither a log
// line nor a client-facing description can echo it. Unwrap keeps errors.Is
// and errors.As working.
type redactedError struct {
	err error
	raw string
}

// minRedactLen: replacing a very short "token" would mangle the message
// while protecting nothing.
const minRedactLen = 8

func redact(err error, raw string) error {
	if err == nil || len(raw) < minRedactLen {
		return err
	}
	return &redactedError{err: err, raw: raw}
}

func (e *redactedError) Error() string { return e.scrub(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }
func (e *redactedError) scrub(s string) string {
	return strings.ReplaceAll(s, e.raw, "[redacted]")
}

// tokenRequestError is a token endpoint request refused before any token
// is read (RFC 6749 section 5.2, RFC 8693 section 2.2.2): its status and
// OAuth error code travel with it.
type tokenRequestError struct {
	status      int    // 400, or 405 for a method other than POST
	code        string // invalid_request, unsupported_grant_type, invalid_target, invalid_scope
	description string
}

func (e *tokenRequestError) Error() string { return "token request: " + e.code + ": " + e.description }

// tokenEndpointError marks a failure met at the token endpoint: the same
// failure is answered the RFC 6749 way (400 invalid_grant, no challenge)
// instead of the RFC 6750 way.
type tokenEndpointError struct{ err error }

func (e *tokenEndpointError) Error() string { return "token endpoint: " + e.err.Error() }
func (e *tokenEndpointError) Unwrap() error { return e.err }

// response is what the gateway itself answers for an error.
type response struct {
	status      int
	challenge   string // WWW-Authenticate, "" for none
	code        string // JSON "error"
	description string // JSON "error_description"
	retryAfter  bool
	// retryAfterValue replaces retryAfterSeconds when retryAfter is set.
	retryAfterValue string
	reason          string // tokengate_token_rejections_total reason, "" when not a rejection
	silent          bool   // client gone: write nothing
	closeConn       bool   // Connection: close (a body cut off or refused)
	allow           string // Allow header of a 405
	// DPoP (RFC 9449): a second WWW-Authenticate value, and a fresh nonce.
	extraChallenge string
	dpopNonce      string

	// What a policy failure asks of the client, for the token endpoint's
	// JSON body (the edge sends them in WWW-Authenticate).
	missingScope string // space-separated required scopes the token lacks
	acrValues    string // space-separated acr values the route accepts
	maxAge       int64  // seconds; 0 when not configured
	hints        bool   // write missingScope, acrValues, maxAge in the body
}

// errorResponse is the ONE mapping from an error to the response the client
// sees, at the edge and at the token endpoint. Anything it does not
// recognise is an outage: 503, fail closed.
func errorResponse(err error) response {
	resp := classify(err)
	var dc *dpopChallenge
	if errors.As(err, &dc) {
		resp = dc.adjust(resp)
	}
	var ep *tokenEndpointError
	if errors.As(err, &ep) {
		resp = resp.atTokenEndpoint()
	}
	return resp
}

// atTokenEndpoint turns the edge's answer into the token endpoint's (RFC
// 6749 section 5.2, RFC 8693 section 2.2.2): a refused subject token or an
// unmet policy is 400 invalid_grant, with no challenge (the subject token
// is not the request's credential); what the policy asks for moves into
// the JSON body. Outages stay 503 with Retry-After: not the client's fault.
func (r response) atTokenEndpoint() response {
	if r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
		return r
	}
	r.status = http.StatusBadRequest
	// RFC 9449 section 5: the token endpoint names DPoP proof problems.
	if r.code != "invalid_dpop_proof" && r.code != "use_dpop_nonce" {
		r.code = "invalid_grant"
	}
	switch r.reason {
	case exchange.ReasonSTSDenied, exchange.ReasonAudience:
		// The STS will not issue for this audience or scope, or the
		// subject token's aud does not allow the requested (configured)
		// audience: RFC 8693 section 2.2.2's invalid_target.
		r.code = "invalid_target"
	}
	r.challenge = ""
	r.hints = true
	return r
}

// classify maps an error to the edge's response (see errorResponse).
func classify(err error) response {
	var (
		bearer   *bearerError
		reject   *exchange.RejectError
		pol      *policyError
		upstream *upstreamError
		gone     *clientGoneError
		red      *redactedError
		treq     *tokenRequestError
		scope    *scopeError
		dp       *dpopError
		path     *pathError
		body     *bodyError
	)
	switch {
	case errors.As(err, &gone):
		return response{status: statusClientClosed, silent: true}
	case errors.As(err, &dp):
		return dp.resp
	case errors.As(err, &treq):
		resp := response{status: treq.status, code: treq.code, description: treq.description}
		if treq.status == http.StatusMethodNotAllowed {
			resp.allow = http.MethodPost
		}
		return resp
	case errors.As(err, &scope):
		desc := scope.Error()
		if errors.As(err, &red) {
			desc = red.scrub(desc)
		}
		return response{status: http.StatusBadRequest, code: "invalid_scope", description: desc}
	case errors.Is(err, errCORSPreflight):
		return response{status: http.StatusForbidden, code: "cors_forbidden", description: errCORSPreflight.Error()}
	case errors.Is(err, errNoRoute):
		return response{status: http.StatusNotFound, code: "not_found", description: "no route matches the request"}
	case errors.As(err, &path):
		return path.response()
	case errors.As(err, &body):
		return body.response()
	case errors.As(err, &bearer) && bearer.missing:
		return response{
			status:      http.StatusUnauthorized,
			challenge:   challengeRealm,
			code:        "unauthorized",
			description: bearer.description,
			reason:      bearer.reason,
		}
	case errors.As(err, &bearer):
		return response{
			status:      http.StatusBadRequest,
			challenge:   `Bearer error="invalid_request"`,
			code:        "invalid_request",
			description: bearer.description,
			reason:      bearer.reason,
		}
	case errors.As(err, &reject):
		desc := reject.Description
		if errors.As(err, &red) {
			desc = red.scrub(desc)
		}
		if desc == "" {
			desc = "the access token is invalid"
		}
		return response{
			status:      http.StatusUnauthorized,
			challenge:   `Bearer error="invalid_token", error_description=` + quote(desc),
			code:        "invalid_token",
			description: desc,
			reason:      reasonLabel(reject.Reason),
		}
	case errors.Is(err, exchange.ErrInvalidToken):
		// An invalid token without a reason: still a rejection, never an outage.
		return response{
			status:      http.StatusUnauthorized,
			challenge:   `Bearer error="invalid_token", error_description="the access token is invalid"`,
			code:        "invalid_token",
			description: "the access token is invalid",
			reason:      exchange.ReasonMalformed,
		}
	case errors.As(err, &pol):
		return pol.response()
	case errors.Is(err, exchange.ErrExchangeDenied):
		// The token is valid, but the STS will not issue a token for this
		// API (invalid_target, invalid_scope, access_denied): RFC 6750's
		// "requires higher privileges than provided by the access token".
		// The STS's own reason goes along when it is safe to show.
		desc := "the token exchange service does not issue a token for this API to this access token"
		var se *exchange.STSError
		if errors.As(err, &se) {
			if pd := se.PublicDescription(); pd != "" {
				desc += ": " + pd
			}
		}
		return response{
			status:      http.StatusForbidden,
			challenge:   `Bearer error="insufficient_scope", error_description=` + quote(desc),
			code:        "insufficient_scope",
			description: desc,
			reason:      exchange.ReasonSTSDenied,
		}
	case errors.Is(err, exchange.ErrSTSConfig):
		// The STS refused tokengate's own request: an outage for the
		// client, with a long Retry-After (retryAfterConfigSeconds).
		return response{
			status:          http.StatusServiceUnavailable,
			code:            "temporarily_unavailable",
			description:     "the token exchange service refused the gateway's request; retry later",
			retryAfter:      true,
			retryAfterValue: retryAfterConfigSeconds,
		}
	case errors.Is(err, exchange.ErrIntrospectionUnavailable):
		return response{
			status:      http.StatusServiceUnavailable,
			code:        "temporarily_unavailable",
			description: "the token introspection service is unavailable; retry later",
			retryAfter:  true,
		}
	case errors.Is(err, exchange.ErrKeysUnavailable):
		return response{
			status:      http.StatusServiceUnavailable,
			code:        "temporarily_unavailable",
			description: "the token issuer's keys are unavailable; retry later",
			retryAfter:  true,
		}
	case errors.As(err, &upstream) && upstream.timeout:
		return response{status: http.StatusGatewayTimeout, code: "gateway_timeout", description: "the upstream did not answer in time"}
	case errors.As(err, &upstream):
		return response{status: http.StatusBadGateway, code: "bad_gateway", description: "the upstream is unreachable"}
	default:
		// exchange.ErrExchangeUnavailable and anything unknown.
		return response{
			status:      http.StatusServiceUnavailable,
			code:        "temporarily_unavailable",
			description: "the token exchange is unavailable; retry later",
			retryAfter:  true,
		}
	}
}

// reasonLabel keeps the rejection label bounded even if a verifier invents a
// reason that is not a plain identifier.
func reasonLabel(reason string) string {
	if reason == "" || len(reason) > 32 {
		return "other"
	}
	for i := 0; i < len(reason); i++ {
		c := reason[i]
		if (c < 'a' || c > 'z') && c != '_' {
			return "other"
		}
	}
	return reason
}

// fail answers r with the response for err, unless the client is gone or a
// response has already started (then it only records why).
func (g *Gateway) fail(w *statusWriter, r *http.Request, st *requestState, err error) {
	resp := g.failure(r, st, err)
	if resp.silent {
		w.silent(resp.status)
		return
	}
	if w.started() {
		return
	}
	if isGRPC(r) {
		// A gRPC client reads a status, not a JSON body (gateway/grpc.go).
		writeGRPCError(w, resp)
		return
	}
	writeResponse(w, resp)
}

// failure is the response for err, with the rejection counted and the
// failure recorded for the access log: the part of answering an error that
// every adapter shares (each then writes it in its own protocol).
func (g *Gateway) failure(r *http.Request, st *requestState, err error) response {
	// A body read that hit its deadline cancels the request's context too
	// (net/http does on any connection read error): that client is still
	// there to be told 408.
	var be *bodyError
	if r.Context().Err() != nil && !errors.As(err, &be) {
		err = &clientGoneError{err: err}
	}
	resp := errorResponse(err)
	if resp.reason != "" {
		st.reason = resp.reason
		g.metrics.rejection(resp.reason).Inc()
	}
	if resp.status >= 500 {
		st.err = err
	}
	return resp
}

type errorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	// Token endpoint only: what the subject token lacks (the edge says it
	// in WWW-Authenticate).
	Scope     string `json:"scope,omitempty"`
	ACRValues string `json:"acr_values,omitempty"`
	MaxAge    int64  `json:"max_age,omitempty"`
}

func writeResponse(w http.ResponseWriter, resp response) {
	h := w.Header()
	// A proxied attempt may have left upstream headers behind (1xx); the
	// error response carries only its own.
	h.Del("Content-Length")
	body := resp.headers(h)
	w.WriteHeader(resp.status)
	_, _ = w.Write(body)
}

// metaHeaders are the headers every form of the answer carries (JSON, a
// gRPC status, an ext_authz denial): the challenges, the DPoP nonce,
// Retry-After, and Connection: close after a body cut off.
func (resp response) metaHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	if resp.challenge != "" {
		h.Set("WWW-Authenticate", resp.challenge)
	}
	if resp.extraChallenge != "" {
		h.Add("WWW-Authenticate", resp.extraChallenge)
	}
	if resp.dpopNonce != "" {
		h.Set(headerDPoPNonce, resp.dpopNonce)
	}
	if resp.retryAfter {
		h.Set("Retry-After", cmp.Or(resp.retryAfterValue, retryAfterSeconds))
	}
	if resp.closeConn {
		// A body cut off leaves an HTTP/1.1 connection unusable; over
		// HTTP/2 net/http turns this into a graceful GOAWAY.
		h.Set("Connection", "close")
	}
}

// headers sets the response's headers on h and returns its body: the JSON
// error object and a newline. writeResponse and the ext_authz denial share
// it, so a denial says exactly what the edge would.
func (resp response) headers(h http.Header) []byte {
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	resp.metaHeaders(h)
	if resp.allow != "" {
		h.Set("Allow", resp.allow)
	}
	eb := errorBody{Error: resp.code, Description: resp.description}
	if resp.hints {
		eb.Scope, eb.ACRValues, eb.MaxAge = resp.missingScope, resp.acrValues, resp.maxAge
	}
	body, err := json.Marshal(eb)
	if err != nil { // cannot happen for two strings; never leave the client without a status
		body = []byte(`{"error":"server_error"}`)
	}
	body = append(body, '\n')
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return body
}

// quote makes s an RFC 9110 quoted-string: backslash-escapes '"' and '\',
// replaces control and non-ASCII bytes (not allowed in an auth-param) with
// a space, and bounds the length.
func quote(s string) string {
	const maxLen = 256
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s) && i < maxLen; i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
