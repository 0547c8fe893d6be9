package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// TestEdgeContract walks every row of CONTRACT.md section 3's response table
// (status, WWW-Authenticate, JSON body, Retry-After) and checks that the
// backend received nothing for any failure.
func TestEdgeContract(t *testing.T) {
	be := newBackend(t, nil)
	hang := make(chan struct{})
	slow := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(hang) }) // runs before slow.Close: release the handler first

	orders := testRoute("orders", "/orders", be.URL)
	strict := testRoute("strict", "/strict", be.URL)
	strict.RequiredScopes = []string{"orders:read", "payments:refund", "admin:root"}
	clients := testRoute("clients", "/clients", be.URL)
	clients.AllowedClients = []string{"mobile", "cli"}
	stepup := testRoute("stepup", "/stepup", be.URL)
	stepup.ACRValues = []string{"gold", "platinum"}
	stepup.MaxAge = config.Duration(5 * time.Minute)
	acr := testRoute("acr", "/acr", be.URL)
	acr.ACRValues = []string{"gold"}
	fresh := testRoute("fresh", "/fresh", be.URL)
	fresh.MaxAge = config.Duration(30 * time.Second)
	down := testRoute("down", "/down", closedURL(t))
	timeout := testRoute("slow", "/slow", slow.URL)
	timeout.Timeout = config.Duration(50 * time.Millisecond)

	env := newEnv(t, []config.Route{orders, strict, clients, stepup, acr, fresh, down, timeout}, func(o *Options) {
		o.Config.Server.MaxTokenBytes = 200
	})
	v, ex := env.verifier, env.exch
	const (
		tokExpired   = "tok-expired-0123456789"
		tokLeaky     = "tok-leaky-0123456789"
		tokKeys      = "tok-keys-0123456789"
		tokOdd       = "tok-odd-verify-error-0123"
		tokPlain     = "tok-plain-invalid-0123"
		tokExFail    = "tok-exchange-down-0123"
		tokExUnknown = "tok-exchange-weird-0123"
		tokExReject  = "tok-exchange-reject-0123"
		tokSTSReject = "tok-sts-rejects-0123"
		tokSTSDenied = "tok-sts-denies-01234"
		tokSTSDown   = "tok-sts-is-down-0123"
	)
	v.fail(tokExpired, exchange.Reject(exchange.ReasonExpired, `token is "expired"`, nil))
	v.fail(tokLeaky, exchange.Reject(exchange.ReasonMalformed, "cannot parse "+tokLeaky, nil))
	v.fail(tokKeys, fmt.Errorf("fetch jwks: %w", exchange.ErrKeysUnavailable))
	v.fail(tokOdd, errBoom)
	v.fail(tokPlain, fmt.Errorf("parse: %w", exchange.ErrInvalidToken))
	for tok, err := range map[string]error{
		tokExFail:    fmt.Errorf("sign: %w", exchange.ErrExchangeUnavailable),
		tokExUnknown: errBoom,
		tokExReject:  exchange.Reject(exchange.ReasonAudience, "audience not allowed", nil),
		// What the remote exchanger returns for each kind of STS answer.
		tokSTSReject: &exchange.RejectError{Reason: exchange.ReasonSTSRejected, Description: "the token exchange service rejected the access token",
			Err: &exchange.STSError{Status: 400, Code: "invalid_grant", Description: "subject token " + tokSTSReject + " is revoked"}},
		tokSTSDenied: fmt.Errorf("remote exchange: %w: %w", exchange.ErrExchangeDenied, &exchange.STSError{Status: 400, Code: "invalid_target"}),
		tokSTSDown:   fmt.Errorf("remote exchange: %w: %w", exchange.ErrExchangeUnavailable, &exchange.STSError{Status: 503}),
	} {
		v.add(tok, func(c *exchange.Claims) { c.Subject = tok })
		ex.errs[tok] = err
	}
	v.add("tok-mobile-0123456789", func(c *exchange.Claims) { c.ClientID = "" })
	v.add("tok-bronze-0123456789", func(c *exchange.Claims) { c.ACR = "bronze" })
	v.add("tok-gold-old-01234567", func(c *exchange.Claims) { c.ACR = "gold"; c.AuthTime = testNow.Add(-6 * time.Minute) })
	v.add("tok-no-auth-time-0123", func(c *exchange.Claims) { c.ACR = "gold"; c.AuthTime = time.Time{} })
	v.add("tok-old-0123456789012", func(c *exchange.Claims) { c.AuthTime = testNow.Add(-31 * time.Second) })

	tests := []struct {
		name       string
		method     string
		path       string
		auth       []string // Authorization header values
		status     int
		challenge  string // exact WWW-Authenticate; "" means none
		code       string // JSON error
		desc       string // JSON error_description substring
		retryAfter bool
		reason     string // tokengate_token_rejections_total label that must move
		noVerify   bool   // the verifier must not be called
	}{
		{name: "no route", path: "/nothing", auth: []string{"Bearer " + umbrella}, status: 404, code: "not_found", noVerify: true},
		{name: "no route before missing token", path: "/ordersx", status: 404, code: "not_found", noVerify: true},
		{name: "no Authorization", path: "/orders", status: 401, challenge: `Bearer realm="tokengate"`, code: "unauthorized", noVerify: true},
		{name: "Basic credentials", path: "/orders", auth: []string{"Basic dXNlcjpwYXNz"}, status: 401, challenge: `Bearer realm="tokengate"`, code: "unauthorized", noVerify: true},
		{name: "token only in query", path: "/orders?access_token=" + umbrella, status: 401, challenge: `Bearer realm="tokengate"`, code: "unauthorized", noVerify: true},
		{name: "empty bearer", path: "/orders", auth: []string{"Bearer"}, status: 400, challenge: `Bearer error="invalid_request"`, code: "invalid_request", noVerify: true},
		{name: "two tokens", path: "/orders", auth: []string{"Bearer " + umbrella + " " + umbrella}, status: 400, challenge: `Bearer error="invalid_request"`, code: "invalid_request", noVerify: true},
		{name: "comma list", path: "/orders", auth: []string{"Bearer " + umbrella + ", Bearer x"}, status: 400, challenge: `Bearer error="invalid_request"`, code: "invalid_request", noVerify: true},
		{name: "two headers", path: "/orders", auth: []string{"Bearer " + umbrella, "Bearer " + umbrella}, status: 400, challenge: `Bearer error="invalid_request"`, code: "invalid_request", noVerify: true},
		{name: "not token68", path: "/orders", auth: []string{"Bearer abc=def"}, status: 400, challenge: `Bearer error="invalid_request"`, code: "invalid_request", noVerify: true},
		{name: "other scheme with params", path: "/orders", auth: []string{`Digest username="a", realm="b"`}, status: 400, challenge: `Bearer error="invalid_request"`, code: "invalid_request", noVerify: true},
		{name: "expired", path: "/orders", auth: []string{"Bearer " + tokExpired}, status: 401,
			challenge: `Bearer error="invalid_token", error_description="token is \"expired\""`, code: "invalid_token", desc: `token is "expired"`, reason: "expired"},
		{name: "description never echoes the token", path: "/orders", auth: []string{"Bearer " + tokLeaky}, status: 401,
			challenge: `Bearer error="invalid_token", error_description="cannot parse [redacted]"`, code: "invalid_token", desc: "cannot parse [redacted]", reason: "malformed"},
		{name: "unknown signer", path: "/orders", auth: []string{"Bearer unknown-token-0123"}, status: 401,
			challenge: `Bearer error="invalid_token", error_description="the signature does not verify"`, code: "invalid_token", reason: "signature"},
		{name: "invalid without reason", path: "/orders", auth: []string{"Bearer " + tokPlain}, status: 401,
			challenge: `Bearer error="invalid_token", error_description="the access token is invalid"`, code: "invalid_token", reason: "malformed"},
		{name: "too large", path: "/orders", auth: []string{"Bearer " + strings.Repeat("a", 201)}, status: 401,
			challenge: `Bearer error="invalid_token", error_description="the access token is too large"`, code: "invalid_token", reason: "too_large", noVerify: true},
		{name: "required scopes missing", path: "/strict/x", auth: []string{"Bearer " + umbrella}, status: 403,
			challenge: `Bearer error="insufficient_scope", scope="payments:refund admin:root"`, code: "insufficient_scope", reason: "policy"},
		{name: "client not allowed", path: "/clients", auth: []string{"Bearer " + umbrella}, status: 403,
			challenge: `Bearer error="insufficient_scope"`, code: "unauthorized_client", reason: "policy"},
		{name: "no client at all", path: "/clients", auth: []string{"Bearer tok-mobile-0123456789"}, status: 403,
			challenge: `Bearer error="insufficient_scope"`, code: "unauthorized_client", reason: "policy"},
		{name: "acr not met", path: "/acr", auth: []string{"Bearer tok-bronze-0123456789"}, status: 401,
			challenge: `Bearer error="insufficient_user_authentication", error_description="the authentication context class (acr) is not one this route accepts", acr_values="gold"`,
			code:      "insufficient_user_authentication", reason: "policy"},
		{name: "max_age not met", path: "/fresh", auth: []string{"Bearer tok-old-0123456789012"}, status: 401,
			challenge: `Bearer error="insufficient_user_authentication", error_description="the authentication is older than this route's max_age", max_age="30"`,
			code:      "insufficient_user_authentication", reason: "policy"},
		{name: "acr and max_age configured, age fails", path: "/stepup", auth: []string{"Bearer tok-gold-old-01234567"}, status: 401,
			challenge: `Bearer error="insufficient_user_authentication", error_description="the authentication is older than this route's max_age", acr_values="gold platinum", max_age="300"`,
			code:      "insufficient_user_authentication", reason: "policy"},
		{name: "max_age without auth_time", path: "/stepup", auth: []string{"Bearer tok-no-auth-time-0123"}, status: 401,
			challenge: `Bearer error="insufficient_user_authentication", error_description="the token has no auth_time and this route limits the authentication age", acr_values="gold platinum", max_age="300"`,
			code:      "insufficient_user_authentication", reason: "policy"},
		{name: "keys unavailable", path: "/orders", auth: []string{"Bearer " + tokKeys}, status: 503, code: "temporarily_unavailable", retryAfter: true},
		{name: "unknown verify error fails closed", path: "/orders", auth: []string{"Bearer " + tokOdd}, status: 503, code: "temporarily_unavailable", retryAfter: true},
		{name: "exchange unavailable", path: "/orders", auth: []string{"Bearer " + tokExFail}, status: 503, code: "temporarily_unavailable", retryAfter: true},
		{name: "unknown exchange error fails closed", path: "/orders", auth: []string{"Bearer " + tokExUnknown}, status: 503, code: "temporarily_unavailable", retryAfter: true},
		{name: "exchange rejects the token", path: "/orders", auth: []string{"Bearer " + tokExReject}, status: 401,
			challenge: `Bearer error="invalid_token", error_description="audience not allowed"`, code: "invalid_token", reason: "audience"},
		{name: "sts rejects the subject token", path: "/orders", auth: []string{"Bearer " + tokSTSReject}, status: 401,
			challenge: `Bearer error="invalid_token", error_description="the token exchange service rejected the access token"`,
			code:      "invalid_token", desc: "rejected", reason: "sts_rejected"},
		{name: "sts will not issue for this api", path: "/orders", auth: []string{"Bearer " + tokSTSDenied}, status: 403,
			challenge: `Bearer error="insufficient_scope", error_description="the token exchange service does not issue a token for this API to this access token"`,
			code:      "insufficient_scope", desc: "does not issue", reason: "sts_denied"},
		{name: "sts unavailable", path: "/orders", auth: []string{"Bearer " + tokSTSDown}, status: 503, code: "temporarily_unavailable", retryAfter: true},
		{name: "upstream unreachable", path: "/down", auth: []string{"Bearer " + umbrella}, status: 502, code: "bad_gateway"},
		{name: "upstream timed out", path: "/slow", auth: []string{"Bearer " + umbrella}, status: 504, code: "gateway_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(be.requests())
			calls := v.calls.Load()
			var rejBefore float64
			if tc.reason != "" {
				rejBefore = testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason))
			}
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			resp, body := env.do(t, method, tc.path, func(r *http.Request) {
				for _, a := range tc.auth {
					r.Header.Add("Authorization", a)
				}
			})
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate = %q\n want %q", got, tc.challenge)
			}
			e := decodeError(t, body)
			if e.Error != tc.code {
				t.Errorf("error = %q, want %q", e.Error, tc.code)
			}
			if e.Description == "" || !strings.Contains(e.Description, tc.desc) {
				t.Errorf("error_description = %q, want it to contain %q", e.Description, tc.desc)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if ra := resp.Header.Get("Retry-After"); (ra != "") != tc.retryAfter {
				t.Errorf("Retry-After = %q, want set: %v", ra, tc.retryAfter)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on the error response")
			}
			for _, a := range tc.auth {
				tok := strings.TrimSpace(strings.TrimPrefix(a, "Bearer"))
				if len(tok) >= minRedactLen && (strings.Contains(string(body), tok) || strings.Contains(fmt.Sprint(resp.Header), tok)) {
					t.Errorf("response echoes the token: %s %v", body, resp.Header)
				}
			}
			if got := len(be.requests()); got != before {
				t.Errorf("backend received %d request(s) for a failure", got-before)
			}
			if tc.noVerify && v.calls.Load() != calls {
				t.Error("the verifier was called")
			}
			if tc.reason != "" {
				if got := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason)) - rejBefore; got != 1 {
					t.Errorf("token_rejections_total{reason=%q} moved by %v, want 1", tc.reason, got)
				}
			}
		})
	}
	if logs := env.logs.String(); strings.Contains(logs, umbrella) || strings.Contains(logs, tokLeaky) || strings.Contains(logs, "alice-subject") {
		t.Errorf("access log holds a token or a subject:\n%s", logs)
	}
}

// TestEdgeSuccess checks the happy path and that the response carries the
// upstream's answer.
func TestEdgeSuccess(t *testing.T) {
	be := newBackend(t, nil)
	env := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, nil)
	resp, body := env.do(t, http.MethodGet, "/orders/1", bearer(umbrella))
	if resp.StatusCode != 200 || string(body) != "upstream ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("WWW-Authenticate") != "" || resp.Header.Get("Cache-Control") == "no-store" {
		t.Errorf("success carries error headers: %v", resp.Header)
	}
	if n := len(be.requests()); n != 1 {
		t.Fatalf("backend got %d requests", n)
	}
}

// TestClientGone: a client that hangs up while the exchange runs gets
// nothing, nothing is forwarded, and the request counts as 499.
func TestClientGone(t *testing.T) {
	be := newBackend(t, nil)
	metrics := NewMetrics(prometheus.NewRegistry())
	block := &blockingExchanger{entered: make(chan struct{}), release: make(chan struct{})}
	gw, err := New(Options{
		Config:    &config.Config{Routes: []config.Route{testRoute("orders", "/orders", be.URL)}},
		Verifier:  newFakeVerifier(),
		Exchanger: block,
		Metrics:   metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()

	ctx, cancel := context.WithCancel(context.Background())
	req := newRequest(t, ctx, "/orders", umbrella)
	w := &discardWriter{h: http.Header{}}
	done := make(chan struct{})
	go func() { gw.ServeHTTP(w, req); close(done) }()
	<-block.entered
	cancel()
	close(block.release)
	<-done
	if w.status != 0 || w.n != 0 {
		t.Errorf("wrote %d / %d bytes to a gone client", w.status, w.n)
	}
	if got := testutil.ToFloat64(metrics.Requests.WithLabelValues("orders", "499")); got != 1 {
		t.Errorf("requests_total{code=499} = %v", got)
	}
	if len(be.requests()) != 0 {
		t.Error("forwarded for a gone client")
	}
}

// blockingExchanger blocks until released, then reports the context error.
type blockingExchanger struct{ entered, release chan struct{} }

func (b *blockingExchanger) Exchange(ctx context.Context, _ exchange.Request) (*exchange.Result, error) {
	close(b.entered)
	<-b.release
	return nil, ctx.Err()
}

func (b *blockingExchanger) Invalidate(context.Context, exchange.Request) {}
