package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

const (
	audOrders  = "https://orders.example.com"
	tokenPath  = config.DefaultTokenEndpointPath
	formType   = "application/x-www-form-urlencoded"
	typeAccess = exchange.TokenTypeAccessToken
	typeJWT    = exchange.TokenTypeJWT
)

// exchangeForm is a valid token exchange request for tok and audience.
func exchangeForm(tok, audience string) url.Values {
	return url.Values{
		"grant_type":         {grantTokenExchange},
		"subject_token":      {tok},
		"subject_token_type": {typeAccess},
		"audience":           {audience},
	}
}

// with returns a copy of f with key set to vals (none deletes it).
func with(f url.Values, key string, vals ...string) url.Values {
	out := url.Values{}
	for k, v := range f {
		out[k] = slices.Clone(v)
	}
	if len(vals) == 0 {
		delete(out, key)
	} else {
		out[key] = vals
	}
	return out
}

// post sends body to the token endpoint with content type ct.
func (env *testEnv) post(t testing.TB, path, ct, body string) (*http.Response, []byte) {
	t.Helper()
	return env.do(t, http.MethodPost, path, func(r *http.Request) {
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
		if ct != "" {
			r.Header.Set("Content-Type", ct)
		}
	})
}

// tokenEnv has an orders route, and two routes sharing the reports
// audience with different policies.
func tokenEnv(t *testing.T, edit func(*Options)) (*testEnv, *backend) {
	t.Helper()
	be := newBackend(t, nil)
	orders := testRoute("orders", "/orders", be.URL)
	orders.RequiredScopes = []string{"orders:read"}
	orders.AllowedClients = []string{"web", "m2m-client"}
	stepup := testRoute("payments", "/payments", be.URL)
	stepup.ACRValues = []string{"gold"}
	stepup.MaxAge = config.Duration(5 * time.Minute)
	reportsRead := testRoute("reports-read", "/reports", be.URL)
	reportsRead.Audience = "https://reports.example.com"
	reportsRead.Scopes = []string{"reports:read", "reports:export"}
	reportsAdmin := testRoute("reports-admin", "/reports/admin", be.URL)
	reportsAdmin.Audience = "https://reports.example.com"
	reportsAdmin.Scopes = []string{"reports:read", "reports:admin"}
	reportsAdmin.ACRValues = []string{"gold"}
	env := newEnv(t, []config.Route{orders, stepup, reportsRead, reportsAdmin}, edit)
	return env, be
}

// TestTokenEndpointSuccess: the RFC 8693 response, through the same
// verification, policy, downscoping and exchanger as the edge.
func TestTokenEndpointSuccess(t *testing.T) {
	env, be := tokenEnv(t, nil)
	env.verifier.add("tok-gold-reports", func(c *exchange.Claims) {
		c.ACR = "gold"
		c.Scopes = []string{"orders:read", "reports:read", "reports:export", "reports:admin"}
	})
	form := exchangeForm(umbrella, audOrders)
	tests := []struct {
		name       string
		form       url.Values
		wantScopes []string
		wantIssued string
	}{
		{name: "downscoped like the edge", form: form, wantScopes: []string{"orders:read", "orders:write"}, wantIssued: typeAccess},
		{name: "jwt subject token type", form: with(form, "subject_token_type", typeJWT), wantScopes: []string{"orders:read", "orders:write"}, wantIssued: typeAccess},
		{name: "access token requested", form: with(form, "requested_token_type", typeAccess), wantScopes: []string{"orders:read", "orders:write"}, wantIssued: typeAccess},
		{name: "scope narrows", form: with(form, "scope", "orders:read"), wantScopes: []string{"orders:read"}, wantIssued: typeAccess},
		{name: "scope narrows, repeated names once", form: with(form, "scope", "orders:write orders:read orders:write"), wantScopes: []string{"orders:read", "orders:write"}, wantIssued: typeAccess},
		{name: "empty scope counts as absent", form: with(form, "scope", ""), wantScopes: []string{"orders:read", "orders:write"}, wantIssued: typeAccess},
		{name: "unknown parameters are ignored", form: with(form, "client_id", "whatever", "twice"), wantScopes: []string{"orders:read", "orders:write"}, wantIssued: typeAccess},
		{name: "shared audience: scopes every route gives", form: exchangeForm("tok-gold-reports", "https://reports.example.com"),
			wantScopes: []string{"reports:read"}, wantIssued: typeAccess},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := env.exch.snapshot()
			resp, body := env.post(t, tokenPath, formType, tc.form.Encode())
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			for h, want := range map[string]string{"Cache-Control": "no-store", "Pragma": "no-cache", "Content-Type": "application/json"} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			after, _ := env.exch.snapshot()
			if len(after) != len(before)+1 {
				t.Fatalf("%d exchanges, want 1", len(after)-len(before))
			}
			req := after[len(after)-1]
			if !slices.Equal(req.Scopes, tc.wantScopes) {
				t.Errorf("exchanged scopes %q, want %q", req.Scopes, tc.wantScopes)
			}
			want := map[string]any{
				"access_token":      exchangedToken(req.Audience, tc.wantScopes),
				"issued_token_type": tc.wantIssued,
				"token_type":        "Bearer",
				"expires_in":        float64(300),
				"scope":             strings.Join(tc.wantScopes, " "),
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			if len(got) != len(want) {
				t.Errorf("response has extra members: %v", got)
			}
			if strings.Contains(string(body), tc.form.Get("subject_token")) {
				t.Error("the response echoes the subject token")
			}
		})
	}
	if n := len(be.requests()); n != 0 {
		t.Errorf("the token endpoint forwarded %d requests", n)
	}
	if got := testutil.ToFloat64(env.metrics.Requests.WithLabelValues(tokenEndpointLabel, "200")); got != float64(len(tests)) {
		t.Errorf("requests_total{route=token_endpoint,code=200} = %v, want %d", got, len(tests))
	}
}

// TestTokenEndpointSameExchangeAsEdge: for the same token and audience the
// endpoint asks the exchanger (and so the cache) for exactly what the edge
// asks, so both get the same cached token.
func TestTokenEndpointSameExchangeAsEdge(t *testing.T) {
	env, _ := tokenEnv(t, nil)
	if resp, body := env.do(t, http.MethodGet, "/orders/1", bearer(umbrella)); resp.StatusCode != 200 {
		t.Fatalf("edge: %d %s", resp.StatusCode, body)
	}
	resp, body := env.post(t, tokenPath, formType, exchangeForm(umbrella, audOrders).Encode())
	if resp.StatusCode != 200 {
		t.Fatalf("endpoint: %d %s", resp.StatusCode, body)
	}
	reqs, _ := env.exch.snapshot()
	if len(reqs) != 2 {
		t.Fatalf("%d exchanges", len(reqs))
	}
	a, b := reqs[0], reqs[1]
	if a.Subject != b.Subject || a.Audience != b.Audience || !slices.Equal(a.Scopes, b.Scopes) {
		t.Errorf("edge asked for %s %q, endpoint for %s %q", a.Audience, a.Scopes, b.Audience, b.Scopes)
	}
}

// TestTokenEndpointJWTRequested: a JWT access token satisfies a request for
// the jwt token type; an opaque one cannot.
func TestTokenEndpointJWTRequested(t *testing.T) {
	for _, tc := range []struct {
		token  string
		status int
		issued string
	}{
		{"aaaa.bbbb.cccc", 200, typeJWT},
		{"opaque-token-value", 400, ""},
	} {
		t.Run(tc.token, func(t *testing.T) {
			env, _ := tokenEnv(t, func(o *Options) {
				o.Exchanger = fastExchanger{&exchange.Result{AccessToken: tc.token, IssuedTokenType: typeAccess, ExpiresAt: testNow.Add(time.Minute)}}
			})
			resp, body := env.post(t, tokenPath, formType, with(exchangeForm(umbrella, audOrders), "requested_token_type", typeJWT).Encode())
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got map[string]any
			_ = json.Unmarshal(body, &got)
			if tc.status == 200 && (got["issued_token_type"] != tc.issued || got["expires_in"] != float64(60)) {
				t.Errorf("response %v", got)
			}
			if tc.status != 200 && got["error"] != "invalid_request" {
				t.Errorf("response %v", got)
			}
		})
	}
}

// TestTokenEndpointErrors: every error code, each with its status, its JSON
// error, Cache-Control: no-store, no challenge, the subject token echoed
// nowhere, nothing forwarded and nothing exchanged.
func TestTokenEndpointErrors(t *testing.T) {
	env, be := tokenEnv(t, nil)
	v, ex := env.verifier, env.exch
	const (
		tokExpired  = "tok-expired-0123456789"
		tokWrongAud = "tok-wrong-audience-0123"
		tokKeys     = "tok-keys-down-0123456"
		tokExDown   = "tok-exchange-down-0123"
		tokEcho     = "tok-echo-me-0123456789"
		tokDenied   = "tok-sts-denied-012345"
	)
	v.fail(tokExpired, exchange.Reject(exchange.ReasonExpired, "token expired", nil))
	v.fail(tokWrongAud, exchange.Reject(exchange.ReasonAudience, "audience not accepted: expected "+audOrders, nil))
	v.fail(tokKeys, fmt.Errorf("fetch: %w", exchange.ErrKeysUnavailable))
	v.fail(tokEcho, exchange.Reject(exchange.ReasonMalformed, "cannot parse "+tokEcho, nil))
	v.add(tokExDown, func(c *exchange.Claims) { c.Subject = tokExDown })
	ex.errs[tokExDown] = fmt.Errorf("sign: %w", exchange.ErrExchangeUnavailable)
	v.add(tokDenied, func(c *exchange.Claims) { c.Subject = tokDenied })
	ex.errs[tokDenied] = fmt.Errorf("sts: %w", exchange.ErrExchangeDenied)
	v.add("tok-evil-client-0123", func(c *exchange.Claims) { c.ClientID = "evil" })
	v.add("tok-no-read-scope-01", func(c *exchange.Claims) { c.Scopes = []string{"orders:write"} })
	v.add("tok-silver-acr-0123", func(c *exchange.Claims) { c.ACR = "silver" })
	v.add("tok-silver-reports-1", func(c *exchange.Claims) { c.Scopes = []string{"reports:read"} }) // fails reports-admin's acr

	good := exchangeForm(umbrella, audOrders)
	tests := []struct {
		name      string
		method    string
		ct        string
		body      string
		status    int
		code      string
		desc      string            // substring of error_description
		hints     map[string]any    // extra JSON members
		reason    string            // rejection reason that must move
		headers   map[string]string // other headers
		subject   string            // the subject token that must not be echoed
		exchanged bool              // the exchanger was called
	}{
		{name: "GET", method: http.MethodGet, status: 405, code: "invalid_request", desc: "only POST", headers: map[string]string{"Allow": "POST"}},
		{name: "PUT", method: http.MethodPut, ct: formType, body: good.Encode(), status: 405, code: "invalid_request", headers: map[string]string{"Allow": "POST"}},
		{name: "JSON body", ct: "application/json", body: `{"grant_type":"x"}`, status: 400, code: "invalid_request", desc: "x-www-form-urlencoded"},
		{name: "no content type", body: good.Encode(), status: 400, code: "invalid_request", desc: "x-www-form-urlencoded"},
		{name: "multipart", ct: "multipart/form-data; boundary=x", body: "--x--", status: 400, code: "invalid_request"},
		{name: "form with charset", ct: formType + "; charset=UTF-8", body: good.Encode(), status: 200},
		{name: "body too large", ct: formType, body: good.Encode() + "&pad=" + strings.Repeat("a", 8192+8192), status: 413, code: "invalid_request", desc: "larger than"},
		{name: "not a form", ct: formType, body: "grant_type=%zz", status: 400, code: "invalid_request", desc: "not a valid"},
		{name: "no grant_type", ct: formType, body: with(good, "grant_type").Encode(), status: 400, code: "invalid_request", desc: "grant_type is required"},
		{name: "other grant", ct: formType, body: with(good, "grant_type", "client_credentials").Encode(), status: 400, code: "unsupported_grant_type"},
		{name: "grant type decided first", ct: formType, body: url.Values{"grant_type": {"password"}}.Encode(), status: 400, code: "unsupported_grant_type"},
		{name: "grant_type twice", ct: formType, body: with(good, "grant_type", grantTokenExchange, grantTokenExchange).Encode(), status: 400, code: "invalid_request", desc: "grant_type is repeated"},
		{name: "subject_token twice", ct: formType, body: with(good, "subject_token", umbrella, umbrella).Encode(), status: 400, code: "invalid_request", desc: "subject_token is repeated", subject: umbrella},
		{name: "scope twice", ct: formType, body: with(good, "scope", "orders:read", "orders:read").Encode(), status: 400, code: "invalid_request", desc: "scope is repeated"},
		{name: "no subject_token", ct: formType, body: with(good, "subject_token").Encode(), status: 400, code: "invalid_request", desc: "subject_token is required"},
		{name: "subject_token only in the query", method: http.MethodPost, ct: formType, body: with(good, "subject_token").Encode(), status: 400, code: "invalid_request", desc: "subject_token is required"},
		{name: "no subject_token_type", ct: formType, body: with(good, "subject_token_type").Encode(), status: 400, code: "invalid_request", desc: "subject_token_type is required"},
		{name: "id_token subject", ct: formType, body: with(good, "subject_token_type", "urn:ietf:params:oauth:token-type:id_token").Encode(), status: 400, code: "invalid_request", desc: "not supported"},
		{name: "refresh token requested", ct: formType, body: with(good, "requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token").Encode(), status: 400, code: "invalid_request", desc: "requested_token_type"},
		{name: "delegation", ct: formType, body: with(with(good, "actor_token", "x"), "actor_token_type", typeAccess).Encode(), status: 400, code: "invalid_request", desc: "delegation"},
		{name: "no audience", ct: formType, body: with(good, "audience").Encode(), status: 400, code: "invalid_request", desc: "audience is required"},
		{name: "unknown audience", ct: formType, body: with(good, "audience", "https://evil.example.com").Encode(), status: 400, code: "invalid_target"},
		{name: "two audiences", ct: formType, body: with(good, "audience", audOrders, "https://payments.example.com").Encode(), status: 400, code: "invalid_target", desc: "single-audience"},
		{name: "resource", ct: formType, body: with(good, "resource", "https://orders.example.com/api").Encode(), status: 400, code: "invalid_target", desc: "resource"},
		{name: "scope malformed", ct: formType, body: with(good, "scope", "orders:read  orders:write").Encode(), status: 400, code: "invalid_scope", desc: "malformed"},
		{name: "scope with a quote", ct: formType, body: with(good, "scope", `orders:"read"`).Encode(), status: 400, code: "invalid_scope"},
		{name: "scope broader", ct: formType, body: with(good, "scope", "orders:read orders:delete billing:read").Encode(), status: 400, code: "invalid_scope", desc: "billing:read orders:delete"},
		{name: "scope names the subject token", ct: formType, body: with(good, "scope", umbrella).Encode(), status: 400, code: "invalid_scope", subject: umbrella},
		{name: "bad signature", ct: formType, body: exchangeForm("tok-unknown-0123456", audOrders).Encode(), status: 400, code: "invalid_grant", reason: "signature", subject: "tok-unknown-0123456"},
		{name: "expired", ct: formType, body: exchangeForm(tokExpired, audOrders).Encode(), status: 400, code: "invalid_grant", desc: "expired", reason: "expired", subject: tokExpired},
		{name: "wrong audience", ct: formType, body: exchangeForm(tokWrongAud, audOrders).Encode(), status: 400, code: "invalid_target", desc: "audience", reason: "audience", subject: tokWrongAud},
		{name: "description never echoes", ct: formType, body: exchangeForm(tokEcho, audOrders).Encode(), status: 400, code: "invalid_grant", desc: "[redacted]", reason: "malformed", subject: tokEcho},
		{name: "too large", ct: formType, body: exchangeForm(strings.Repeat("a", 8193), audOrders).Encode(), status: 400, code: "invalid_grant", reason: "too_large"},
		{name: "client not allowed", ct: formType, body: exchangeForm("tok-evil-client-0123", audOrders).Encode(), status: 400, code: "invalid_grant", desc: "client", reason: "policy"},
		{name: "required scope missing", ct: formType, body: exchangeForm("tok-no-read-scope-01", audOrders).Encode(), status: 400, code: "invalid_grant", reason: "policy",
			hints: map[string]any{"scope": "orders:read"}},
		{name: "step-up needed", ct: formType, body: exchangeForm("tok-silver-acr-0123", "https://payments.example.com").Encode(), status: 400, code: "invalid_grant", desc: "acr", reason: "policy",
			hints: map[string]any{"acr_values": "gold", "max_age": float64(300)}},
		{name: "shared audience: every route's policy", ct: formType, body: exchangeForm("tok-silver-reports-1", "https://reports.example.com").Encode(), status: 400, code: "invalid_grant", reason: "policy",
			hints: map[string]any{"acr_values": "gold"}},
		{name: "issuer keys down", ct: formType, body: exchangeForm(tokKeys, audOrders).Encode(), status: 503, code: "temporarily_unavailable", headers: map[string]string{"Retry-After": "5"}, subject: tokKeys},
		{name: "STS refuses the target", ct: formType, body: exchangeForm(tokDenied, audOrders).Encode(), status: 400, code: "invalid_target", reason: "sts_denied", subject: tokDenied, exchanged: true},
		{name: "exchange down", ct: formType, body: exchangeForm(tokExDown, audOrders).Encode(), status: 503, code: "temporarily_unavailable", headers: map[string]string{"Retry-After": "5"}, subject: tokExDown, exchanged: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := cmpOr(tc.method, http.MethodPost)
			target := tokenPath
			if tc.name == "subject_token only in the query" {
				target += "?subject_token=" + umbrella
				tc.subject = umbrella
			}
			rejBefore := 0.0
			if tc.reason != "" {
				rejBefore = testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason))
			}
			exBefore, _ := ex.snapshot()
			resp, body := env.do(t, method, target, func(r *http.Request) {
				r.Body = io.NopCloser(strings.NewReader(tc.body))
				r.ContentLength = int64(len(tc.body))
				if tc.ct != "" {
					r.Header.Set("Content-Type", tc.ct)
				}
			})
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != "" {
				t.Errorf("WWW-Authenticate = %q: the token endpoint sends no challenge", got)
			}
			for h, want := range tc.headers {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			if tc.status != 200 {
				var got map[string]any
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("body %q: %v", body, err)
				}
				if got["error"] != tc.code {
					t.Errorf("error = %v, want %s (%v)", got["error"], tc.code, got["error_description"])
				}
				if desc, _ := got["error_description"].(string); desc == "" || !strings.Contains(desc, tc.desc) {
					t.Errorf("error_description = %q, want it to contain %q", desc, tc.desc)
				}
				for k, v := range tc.hints {
					if got[k] != v {
						t.Errorf("%s = %v, want %v", k, got[k], v)
					}
				}
				exAfter, _ := ex.snapshot()
				if called := len(exAfter) > len(exBefore); called != tc.exchanged {
					t.Errorf("exchanger called = %t, want %t", called, tc.exchanged)
				}
			}
			for _, secret := range []string{tc.subject, umbrella} {
				if secret == "" || (secret == umbrella && tc.subject == "") {
					continue
				}
				if strings.Contains(string(body), secret) {
					t.Errorf("the response echoes the subject token: %s", body)
				}
				for h, vals := range resp.Header {
					if strings.Contains(strings.Join(vals, " "), secret) {
						t.Errorf("header %s echoes the subject token", h)
					}
				}
			}
			if tc.reason != "" {
				if got := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason)); got != rejBefore+1 {
					t.Errorf("rejections{reason=%s} moved by %v, want 1", tc.reason, got-rejBefore)
				}
			}
		})
	}
	if n := len(be.requests()); n != 0 {
		t.Errorf("the backend received %d requests from the token endpoint", n)
	}
	if got := testutil.ToFloat64(env.metrics.Requests.WithLabelValues(tokenEndpointLabel, "400")); got < 30 {
		t.Errorf("requests_total{route=token_endpoint,code=400} = %v", got)
	}
	if logs := env.logs.String(); strings.Contains(logs, umbrella) || strings.Contains(logs, "tok-echo-me") {
		t.Error("a subject token reached the log")
	}
	if !strings.Contains(env.logs.String(), `"route":"token_endpoint"`) {
		t.Error("the access log does not name the token endpoint")
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestTokenEndpointNotShadowed: a route on "/" does not take the endpoint's
// path (any method), while the paths around it still go to the route.
func TestTokenEndpointNotShadowed(t *testing.T) {
	be := newBackend(t, nil)
	root := testRoute("root", "/", be.URL)
	root.Audience = audOrders
	root.Scopes = []string{"orders:read"}
	env := newEnv(t, []config.Route{root}, nil)

	resp, body := env.post(t, tokenPath, formType, exchangeForm(umbrella, audOrders).Encode())
	if resp.StatusCode != 200 || !strings.Contains(string(body), "access_token") {
		t.Fatalf("POST %s: %d %s", tokenPath, resp.StatusCode, body)
	}
	for _, p := range []string{tokenPath, "/oauth2//token", "/oauth2/x/../token"} {
		if resp, _ := env.do(t, http.MethodGet, p, bearer(umbrella)); resp.StatusCode != 405 {
			t.Errorf("GET %s = %d, want 405 from the endpoint", p, resp.StatusCode)
		}
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("the root route received %d token endpoint requests", n)
	}
	for _, p := range []string{"/oauth2/token/x", "/oauth2/token/", "/oauth2/tokens", "/oauth2"} {
		if resp, body := env.do(t, http.MethodGet, p, bearer(umbrella)); resp.StatusCode != 200 {
			t.Errorf("GET %s = %d %s, want the root route", p, resp.StatusCode, body)
		}
	}
}

// TestTokenEndpointDisabledAndMoved: "" disables the endpoint (its path is
// an ordinary route path again); another path moves it.
func TestTokenEndpointDisabledAndMoved(t *testing.T) {
	str := func(s string) *string { return &s }
	be := newBackend(t, nil)
	root := testRoute("root", "/", be.URL)
	off := newEnv(t, []config.Route{root}, func(o *Options) { o.Config.Server.TokenEndpointPath = str("") })
	if resp, _ := off.post(t, tokenPath, formType, exchangeForm(umbrella, audOrders).Encode()); resp.StatusCode != 401 {
		t.Errorf("disabled endpoint: POST %s = %d, want the root route's 401 (no bearer)", tokenPath, resp.StatusCode)
	}
	moved := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, func(o *Options) { o.Config.Server.TokenEndpointPath = str("/sts/exchange") })
	if resp, body := moved.post(t, "/sts/exchange", formType, exchangeForm(umbrella, audOrders).Encode()); resp.StatusCode != 200 {
		t.Errorf("moved endpoint: %d %s", resp.StatusCode, body)
	}
	if resp, _ := moved.post(t, tokenPath, formType, exchangeForm(umbrella, audOrders).Encode()); resp.StatusCode != 404 {
		t.Errorf("old path after a move = %d, want 404", resp.StatusCode)
	}
}

// TestNewRefusesRouteOnTokenEndpoint: the gateway refuses a route on the
// endpoint's path even in a configuration built in code.
func TestNewRefusesRouteOnTokenEndpoint(t *testing.T) {
	_, err := New(Options{
		Config:    &config.Config{Routes: []config.Route{testRoute("x", tokenPath, "http://127.0.0.1:1")}},
		Verifier:  newFakeVerifier(),
		Exchanger: newFakeExchanger(),
	})
	if err == nil || !strings.Contains(err.Error(), "routes[0].path_prefix") {
		t.Fatalf("New = %v, want a routes[0].path_prefix error", err)
	}
}

// TestTokenEndpointStepUpRoundTrip: RFC 9470 at the token endpoint: the
// refusal says what to satisfy; a new token that does is exchanged.
func TestTokenEndpointStepUpRoundTrip(t *testing.T) {
	env, _ := tokenEnv(t, nil)
	env.verifier.add("tok-old-login-01", func(c *exchange.Claims) { c.ACR, c.AuthTime = "gold", testNow.Add(-time.Hour) })
	resp, body := env.post(t, tokenPath, formType, exchangeForm("tok-old-login-01", "https://payments.example.com").Encode())
	var refused struct {
		Error  string `json:"error"`
		MaxAge int64  `json:"max_age"`
		ACR    string `json:"acr_values"`
	}
	if err := json.Unmarshal(body, &refused); err != nil || resp.StatusCode != 400 || refused.Error != "invalid_grant" || refused.MaxAge != 300 || refused.ACR != "gold" {
		t.Fatalf("refusal: %d %s", resp.StatusCode, body)
	}
	env.verifier.add("tok-new-login-01", func(c *exchange.Claims) {
		c.ACR, c.AuthTime = refused.ACR, testNow.Add(-time.Duration(refused.MaxAge)*time.Second/10)
	})
	if resp, body := env.post(t, tokenPath, formType, exchangeForm("tok-new-login-01", "https://payments.example.com").Encode()); resp.StatusCode != 200 {
		t.Fatalf("after step-up: %d %s", resp.StatusCode, body)
	}
}
