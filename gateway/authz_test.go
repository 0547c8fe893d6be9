package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// Tokens of the decision table.
const (
	tokRevoked   = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZXZva2VkIn0.cmV2b2tlZC1zaWc"
	tokWrongAud  = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3cm9uZ2F1ZCJ9.d3JvbmctYXVkLXNpZw"
	tokDPoPBound = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJib3VuZCJ9.Ym91bmQtc2ln"
)

// revokedSubjects refuses the tokens of some subjects, as exchange.Caching
// refuses revoked tokens.
type revokedSubjects map[string]bool

func (r revokedSubjects) CheckRevoked(t *exchange.Token) error {
	if r[t.Claims.Subject] {
		return exchange.Reject(exchange.ReasonRevoked, "the access token has been revoked", nil)
	}
	return nil
}

// decisionCase is one request and what every adapter must decide for it.
type decisionCase struct {
	name      string
	method    string
	target    string // as sent, raw
	token     string // Authorization: Bearer <token>; "" sends none
	header    map[string]string
	status    int    // the HTTP status decided
	challenge string // prefix of the first WWW-Authenticate; "" for none
	code      string // JSON error
	exchanged string // the token that replaces the umbrella token when allowed
}

func decisionTable() []decisionCase {
	return []decisionCase{
		{name: "allowed", target: "/orders/1?x=1", token: umbrella, status: 200,
			exchanged: exchangedToken("https://orders.example.com", []string{"orders:read", "orders:write"})},
		{name: "missing token", target: "/orders/1", status: 401, challenge: `Bearer realm="tokengate"`, code: "unauthorized"},
		{name: "revoked", target: "/orders/1", token: tokRevoked, status: 401,
			challenge: `Bearer error="invalid_token"`, code: "invalid_token"},
		{name: "wrong audience", target: "/orders/1", token: tokWrongAud, status: 401,
			challenge: `Bearer error="invalid_token"`, code: "invalid_token"},
		{name: "DPoP-bound without proof", target: "/orders/1", token: tokDPoPBound, status: 401,
			challenge: `DPoP algs=`, code: "invalid_token"},
		{name: "step-up", target: "/secure/x", token: umbrella, status: 401,
			challenge: `Bearer error="insufficient_user_authentication"`, code: "insufficient_user_authentication"},
		{name: "insufficient scope", target: "/admin/x", token: umbrella, status: 403,
			challenge: `Bearer error="insufficient_scope"`, code: "insufficient_scope"},
		{name: "path confusion by case", target: "/API/admin/x", token: umbrella, status: 400, code: "invalid_request"},
		{name: "encoded slash", target: "/orders%2F..%2Fadmin", token: umbrella, status: 400, code: "invalid_request"},
		{name: "path parameter", target: "/orders;x=1/1", token: umbrella, status: 400, code: "invalid_request"},
		{name: "dot segments cleaned", target: "/orders/../api/admin/x", token: umbrella, status: 403,
			challenge: `Bearer error="insufficient_scope"`, code: "insufficient_scope"},
		{name: "no route", target: "/nowhere", token: umbrella, status: 404, code: "not_found"},
		{name: "token in query and header", target: "/orders/1?access_token=abc", token: umbrella, status: 400,
			challenge: `Bearer error="invalid_request"`, code: "invalid_request"},
		{name: "exchange outage", target: "/orders/1", token: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvdXRhZ2UifQ.b3V0YWdlLXNpZw",
			status: 503, code: "temporarily_unavailable"},
	}
}

// decisionEnv is a gateway with the routes of the decision table.
func decisionEnv(t *testing.T) (*testEnv, *backend) {
	t.Helper()
	be := newBackend(t, nil)
	orders := testRoute("orders", "/orders", be.URL)
	secure := testRoute("secure", "/secure", be.URL)
	secure.Audience = orders.Audience
	secure.ACRValues = []string{"gold"}
	admin := testRoute("admin", "/admin", be.URL)
	admin.RequiredScopes = []string{"admin:write"}
	api := testRoute("api", "/api", be.URL)
	strict := testRoute("strict", "/api/admin", be.URL)
	strict.RequiredScopes = []string{"admin:write"}
	env := newEnv(t, []config.Route{orders, secure, admin, api, strict}, func(o *Options) {
		o.Revocations = revokedSubjects{"revoked-subject": true}
	})
	env.verifier.add(tokRevoked, func(c *exchange.Claims) { c.Subject = "revoked-subject" })
	env.verifier.fail(tokWrongAud, exchange.Reject(exchange.ReasonAudience, "the token's aud does not name this API", nil))
	env.verifier.add(tokDPoPBound, func(c *exchange.Claims) { c.JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" })
	env.verifier.add("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvdXRhZ2UifQ.b3V0YWdlLXNpZw", func(c *exchange.Claims) { c.Subject = "outage" })
	env.exch.errs["outage"] = exchange.ErrExchangeUnavailable
	return env, be
}

// outcome is what an adapter decided, in HTTP terms.
type outcome struct {
	status    int
	challenge string
	code      string
	forwarded string // the Authorization the upstream gets ("" when none)
}

func checkOutcome(t *testing.T, via string, tc decisionCase, got outcome) {
	t.Helper()
	if got.status != tc.status {
		t.Errorf("%s: status %d, want %d", via, got.status, tc.status)
	}
	if tc.challenge == "" && got.challenge != "" {
		t.Errorf("%s: WWW-Authenticate %q, want none", via, got.challenge)
	}
	if !strings.HasPrefix(got.challenge, tc.challenge) {
		t.Errorf("%s: WWW-Authenticate %q, want prefix %q", via, got.challenge, tc.challenge)
	}
	if got.code != tc.code {
		t.Errorf("%s: error %q, want %q", via, got.code, tc.code)
	}
	want := ""
	if tc.exchanged != "" {
		want = "Bearer " + tc.exchanged
	}
	if got.forwarded != want {
		t.Errorf("%s: upstream Authorization %q, want %q", via, got.forwarded, want)
	}
	if strings.Contains(got.forwarded, umbrella) {
		t.Errorf("%s: the umbrella token would reach the upstream", via)
	}
}

func (tc decisionCase) headers() http.Header {
	h := http.Header{}
	if tc.token != "" {
		h.Set("Authorization", "Bearer "+tc.token)
	}
	for k, v := range tc.header {
		h.Set(k, v)
	}
	return h
}

func (tc decisionCase) httpMethod() string {
	if tc.method == "" {
		return http.MethodGet
	}
	return tc.method
}

// rawGet sends target exactly as written (no client-side cleaning).
func rawDo(t *testing.T, base, method, target string, h http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target
	if i := strings.IndexByte(target, '?'); i >= 0 {
		req.URL.Opaque, req.URL.RawQuery = target[:i], target[i+1:]
	}
	req.Header = h
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func errorCode(t *testing.T, status int, body []byte) string {
	if status == http.StatusOK || len(body) == 0 {
		return ""
	}
	return decodeError(t, body).Error
}

// TestDecisionParity runs one decision table through the edge, HTTP
// forward-auth and Envoy ext_authz: they must decide alike.
func TestDecisionParity(t *testing.T) {
	env, be := decisionEnv(t)
	authz := httptest.NewServer(http.HandlerFunc(env.gw.ServeAuthz))
	t.Cleanup(authz.Close)
	for _, tc := range decisionTable() {
		t.Run(tc.name, func(t *testing.T) {
			// The edge.
			before := len(be.requests())
			resp, body := rawDo(t, env.edge.URL, tc.httpMethod(), tc.target, tc.headers())
			got := outcome{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), code: errorCode(t, resp.StatusCode, body)}
			if reqs := be.requests(); len(reqs) > before {
				got.forwarded = reqs[len(reqs)-1].Header.Get("Authorization")
			}
			checkOutcome(t, "edge", tc, got)

			// HTTP forward-auth, ingress-nginx style.
			h := tc.headers()
			h.Set("X-Original-Uri", tc.target)
			h.Set("X-Original-Method", tc.httpMethod())
			resp, body = rawDo(t, authz.URL, http.MethodGet, "/_auth", h)
			got = outcome{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), code: errorCode(t, resp.StatusCode, body)}
			if resp.StatusCode == http.StatusOK {
				got.forwarded = resp.Header.Get("Authorization")
				if len(body) != 0 {
					t.Errorf("forward-auth: allowed body %q, want empty", body)
				}
			}
			checkOutcome(t, "forward-auth", tc, got)

			// Envoy ext_authz.
			got = checkVia(t, env.gw, tc)
			checkOutcome(t, "ext_authz", tc, got)
		})
	}
}

// checkVia calls Check with the case's request, as Envoy describes it.
func checkVia(t *testing.T, gw *Gateway, tc decisionCase) outcome {
	t.Helper()
	hdrs := map[string]string{}
	for k, v := range tc.headers() {
		hdrs[strings.ToLower(k)] = v[0]
	}
	hdrs[":authority"] = "gateway.test"
	res, err := gw.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: tc.httpMethod(), Host: "gateway.test", Path: tc.target, Headers: hdrs,
		}},
	}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	var got outcome
	if ok := res.GetOkResponse(); ok != nil {
		if c := codes.Code(res.GetStatus().GetCode()); c != codes.OK {
			t.Errorf("ext_authz: OkResponse with status %v", c)
		}
		got.status = http.StatusOK
		for _, hv := range ok.GetHeaders() {
			if hv.GetHeader().GetKey() == "authorization" {
				//lint:ignore SA1019 the contract pins append: false
				if hv.GetAppendAction().String() != "OVERWRITE_IF_EXISTS_OR_ADD" || hv.GetAppend().GetValue() {
					t.Errorf("ext_authz: authorization is not overwritten: %v", hv)
				}
				got.forwarded = hv.GetHeader().GetValue()
			}
		}
		if !containsString(ok.GetHeadersToRemove(), "dpop") {
			t.Errorf("ext_authz: headers_to_remove %v lacks dpop", ok.GetHeadersToRemove())
		}
		return got
	}
	d := res.GetDeniedResponse()
	got.status = int(d.GetStatus().GetCode())
	for _, hv := range d.GetHeaders() {
		if hv.GetHeader().GetKey() == "www-authenticate" && got.challenge == "" {
			got.challenge = hv.GetHeader().GetValue()
		}
	}
	got.code = decodeError(t, []byte(d.GetBody())).Error
	if want := extAuthzCode(got.status); codes.Code(res.GetStatus().GetCode()) != want {
		t.Errorf("ext_authz: gRPC status %v for HTTP %d, want %v", codes.Code(res.GetStatus().GetCode()), got.status, want)
	}
	return got
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestGRPCCodes pins the contract's mapping of decided statuses to
// ext_authz Check statuses.
func TestGRPCCodes(t *testing.T) {
	for status, want := range map[int]codes.Code{
		401: codes.Unauthenticated, 403: codes.PermissionDenied, 404: codes.PermissionDenied,
		400: codes.InvalidArgument, 503: codes.Unavailable,
	} {
		if got := extAuthzCode(status); got != want {
			t.Errorf("extAuthzCode(%d) = %v, want %v", status, got, want)
		}
	}
}

// TestForwardAuthOriginal: every source of the original request, in the
// contract's order of precedence.
func TestForwardAuthOriginal(t *testing.T) {
	env, _ := decisionEnv(t)
	env.gw.authzPrefix = "/ext-authz"
	authz := httptest.NewServer(http.HandlerFunc(env.gw.ServeAuthz))
	t.Cleanup(authz.Close)
	tests := []struct {
		name   string
		path   string // the forward-auth request's own path
		header map[string]string
		status int
	}{
		{"traefik", "/", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/orders/1", "X-Forwarded-Host": "api.test"}, 200},
		{"ingress-nginx X-Original-URL", "/", map[string]string{"X-Original-Method": "GET", "X-Original-Url": "https://api.test/orders/1?a=b"}, 200},
		// Every source present must agree with the one read first: a
		// client's own header, passed on by nginx, is never believed over
		// the proxy's.
		{"X-Forwarded-Uri agreeing with X-Original-URL", "/", map[string]string{"X-Forwarded-Uri": "/orders/1?a=b", "X-Original-Url": "https://api.test/orders/1?a=b"}, 200},
		{"X-Forwarded-Uri disagreeing with X-Original-URL", "/", map[string]string{"X-Forwarded-Uri": "/orders/1", "X-Original-Url": "https://api.test/nowhere"}, 400},
		{"X-Forwarded-Uri disagreeing with X-Original-URI", "/", map[string]string{"X-Forwarded-Uri": "/orders/1", "X-Original-Uri": "/nowhere"}, 400},
		{"X-Original-URL disagreeing with X-Original-URI", "/", map[string]string{"X-Original-Url": "https://api.test/orders/1", "X-Original-Uri": "/nowhere"}, 400},
		{"the same path spelled otherwise", "/", map[string]string{"X-Forwarded-Uri": "/orders/%31", "X-Original-Uri": "/orders/1"}, 400},
		{"X-Forwarded-Method disagreeing with X-Original-Method", "/", map[string]string{"X-Forwarded-Method": "GET", "X-Original-Method": "DELETE", "X-Original-Uri": "/orders/1"}, 400},
		{"X-Forwarded-Host disagreeing with X-Original-URL", "/", map[string]string{"X-Forwarded-Host": "other.test", "X-Original-Url": "https://api.test/orders/1"}, 400},
		{"X-Forwarded-Host agreeing but for case", "/", map[string]string{"X-Forwarded-Host": "API.test", "X-Original-Url": "https://api.test/orders/1"}, 200},
		{"X-Forwarded-Proto is not compared (a TLS load balancer in front)", "/", map[string]string{"X-Forwarded-Proto": "https", "X-Original-Url": "http://api.test/orders/1"}, 200},
		{"the forward-auth call's own path is not compared", "/_tokengate", map[string]string{"X-Original-Uri": "/orders/1"}, 200},
		// Under authz.path_prefix the call is Envoy's http_service: its own
		// method and path are the original's, and headers must agree.
		{"envoy http_service and an agreeing X-Original-URI", "/ext-authz/orders/1", map[string]string{"X-Original-Uri": "/orders/1"}, 200},
		{"envoy http_service and a client's X-Forwarded-Uri", "/ext-authz/secure/1", map[string]string{"X-Forwarded-Uri": "/orders/1"}, 400},
		{"envoy http_service and a client's X-Original-URL", "/ext-authz/secure/1", map[string]string{"X-Original-Url": "https://api.test/orders/1"}, 400},
		{"envoy http_service and a client's X-Forwarded-Method", "/ext-authz/orders/1", map[string]string{"X-Forwarded-Method": "DELETE"}, 400},
		{"nginx auth_request X-Original-URI", "/", map[string]string{"X-Original-Uri": "/orders/1"}, 200},
		{"envoy http_service path less prefix", "/ext-authz/orders/1", nil, 200},
		{"own path without prefix", "/orders/1", nil, 200},
		{"prefix is matched on a whole segment", "/ext-authzorders/1", nil, 404},
		{"path rules hold on X-Original-URL", "/", map[string]string{"X-Original-Url": "https://api.test/orders%2f1"}, 400},
		{"path rules hold on X-Forwarded-Uri", "/", map[string]string{"X-Forwarded-Uri": "/orders\\1"}, 400},
		{"malformed X-Original-URL", "/", map[string]string{"X-Original-Url": "::nonsense"}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Authorization": {"Bearer " + umbrella}}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			resp, body := rawDo(t, authz.URL, http.MethodGet, tc.path, h)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 && !strings.HasPrefix(resp.Header.Get("Authorization"), "Bearer xt.") {
				t.Errorf("Authorization %q, want the exchanged token", resp.Header.Get("Authorization"))
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
		})
	}
}

// TestAuthzDecisionOnlyRoute: a route without upstream is decided through
// authz and is a 404 at the edge.
func TestAuthzDecisionOnlyRoute(t *testing.T) {
	only := testRoute("only", "/only", "")
	env := newEnv(t, []config.Route{only}, func(o *Options) { o.Config.Authz.Listen = "127.0.0.1:0" })
	resp, _ := env.do(t, http.MethodGet, "/only/x", bearer(umbrella))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("edge: status %d, want 404", resp.StatusCode)
	}
	authz := httptest.NewServer(http.HandlerFunc(env.gw.ServeAuthz))
	t.Cleanup(authz.Close)
	resp, _ = rawDo(t, authz.URL, http.MethodGet, "/", http.Header{
		"Authorization": {"Bearer " + umbrella}, "X-Original-Uri": {"/only/x"}})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("forward-auth: status %d, want 200", resp.StatusCode)
	}
}

// TestAuthzMetricsAndLog: decisions are counted by route, code and
// protocol, and logged without the token.
func TestAuthzMetricsAndLog(t *testing.T) {
	env, _ := decisionEnv(t)
	authz := httptest.NewServer(http.HandlerFunc(env.gw.ServeAuthz))
	t.Cleanup(authz.Close)
	rawDo(t, authz.URL, http.MethodGet, "/", http.Header{"Authorization": {"Bearer " + umbrella}, "X-Original-Uri": {"/orders/1"}})
	rawDo(t, authz.URL, http.MethodGet, "/", http.Header{"X-Original-Uri": {"/orders/1"}})
	checkVia(t, env.gw, decisionCase{target: "/nowhere", token: umbrella})
	for _, want := range []struct {
		route, code, protocol string
	}{{"orders", "200", "http"}, {"orders", "401", "http"}, {"_none", "404", "grpc"}} {
		c, err := env.metrics.AuthzDecisions.GetMetricWithLabelValues(want.route, want.code, want.protocol)
		if err != nil {
			t.Fatal(err)
		}
		if v := testutil.ToFloat64(c); v != 1 {
			t.Errorf("authz_decisions_total%v = %v, want 1", want, v)
		}
	}
	logs := env.logs.String()
	if strings.Contains(logs, umbrella) || strings.Contains(logs, "xt.") {
		t.Error("a token reached the access log")
	}
	if !strings.Contains(logs, `"authz":"grpc"`) || !strings.Contains(logs, `"authz":"http"`) {
		t.Errorf("access log lacks the authz protocol: %s", logs)
	}
}

// TestForwardAuthSpoofedOriginal: behind nginx or ingress-nginx, which pass
// the client's headers to the auth request, a client adds the headers of
// another proxy family to have a laxer request decided: here /orders (the
// same audience as /secure, without its acr requirement) while the proxy
// forwards /secure. Believed, the answer would be a token the /secure
// backend accepts, without the step-up. Refused as 400 with reason
// original, counted, and never an Authorization.
func TestForwardAuthSpoofedOriginal(t *testing.T) {
	env, _ := decisionEnv(t)
	authz := httptest.NewServer(http.HandlerFunc(env.gw.ServeAuthz))
	t.Cleanup(authz.Close)
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"X-Forwarded-Uri beside nginx's X-Original-URI", http.Header{"X-Original-Uri": {"/secure/1"}, "X-Forwarded-Uri": {"/orders/1"}}},
		{"X-Original-URL beside nginx's X-Original-URI", http.Header{"X-Original-Uri": {"/secure/1"}, "X-Original-Url": {"https://api.test/orders/1"}}},
		{"X-Forwarded-Uri beside ingress-nginx's X-Original-URL", http.Header{"X-Original-Url": {"https://api.test/secure/1"}, "X-Forwarded-Uri": {"/orders/1"}}},
		{"a second X-Original-URI", http.Header{"X-Original-Uri": {"/orders/1", "/secure/1"}}},
		{"a second X-Forwarded-Uri", http.Header{"X-Forwarded-Uri": {"/orders/1", "/secure/1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(ReasonOriginal))
			tc.header.Set("Authorization", "Bearer "+umbrella)
			resp, body := rawDo(t, authz.URL, http.MethodGet, "/", tc.header)
			if resp.StatusCode != http.StatusBadRequest || errorCode(t, resp.StatusCode, body) != "invalid_request" {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if a := resp.Header.Get("Authorization"); a != "" {
				t.Errorf("a refused decision carries Authorization %q", a)
			}
			if n := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(ReasonOriginal)) - before; n != 1 {
				t.Errorf("rejections{reason=original} went up by %v, want 1", n)
			}
		})
	}
}
