package gateway

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/exchange"
)

// TestTokenEndpointTarget: how the token endpoint reads its target (RFC 8693
// audience, RFC 8707 resource) and answers a target it will not issue for
// with invalid_target: an unknown audience or resource, two different
// targets, several of either, and a route audience the subject token's aud
// does not allow (the verifier's "audience" rejection).
func TestTokenEndpointTarget(t *testing.T) {
	const (
		audReports  = "https://reports.example.com"
		tokWrongAud = "tok-aud-elsewhere-01"
		long        = "https://evil.example.com/"
	)
	env, _ := tokenEnv(t, nil)
	env.verifier.fail(tokWrongAud, exchange.Reject(exchange.ReasonAudience, "audience not accepted: expected "+audOrders, nil))
	base := exchangeForm(umbrella, audOrders)
	noAudience := with(base, "audience")
	tests := []struct {
		name   string
		form   url.Values
		status int
		code   string // error, for a refusal
		desc   string // in error_description
		reason string // rejection reason counted, if any
		aud    string // audience exchanged for, on success
	}{
		{name: "resource names a route audience", form: with(noAudience, "resource", audOrders), status: 200, aud: audOrders},
		{name: "audience and resource agree", form: with(base, "resource", audOrders), status: 200, aud: audOrders},
		{name: "audience", form: base, status: 200, aud: audOrders},
		{name: "resource is not a route audience", form: with(noAudience, "resource", "https://orders.example.com/api"),
			status: 400, code: "invalid_target", desc: "not an API behind this gateway"},
		{name: "audience and resource differ", form: with(base, "resource", audReports),
			status: 400, code: "invalid_target", desc: "audience and resource name different targets"},
		{name: "resource differs from audience, not a route", form: with(base, "resource", long+strings.Repeat("a", 4000)),
			status: 400, code: "invalid_target", desc: "different targets"},
		{name: "several resources", form: with(noAudience, "resource", audOrders, audReports),
			status: 400, code: "invalid_target", desc: "several resources"},
		{name: "neither audience nor resource", form: noAudience,
			status: 400, code: "invalid_request", desc: "audience is required"},
		{name: "subject token's aud does not allow the audience", form: exchangeForm(tokWrongAud, audOrders),
			status: 400, code: "invalid_target", desc: "audience not accepted", reason: "audience"},
		{name: "subject token's aud does not allow the resource", form: with(with(exchangeForm(tokWrongAud, audOrders), "audience"), "resource", audOrders),
			status: 400, code: "invalid_target", desc: "audience not accepted", reason: "audience"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := env.exch.snapshot()
			rejBefore := 0.0
			if tc.reason != "" {
				rejBefore = testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason))
			}
			resp, body := env.post(t, tokenPath, formType, tc.form.Encode())
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			after, _ := env.exch.snapshot()
			if tc.status == http.StatusOK {
				if len(after) != len(before)+1 || after[len(after)-1].Audience != tc.aud {
					t.Fatalf("exchanges %v, want one for %s", after[len(before):], tc.aud)
				}
				return
			}
			if len(after) != len(before) {
				t.Errorf("the exchanger was called for a refused target")
			}
			var got struct {
				Error       string `json:"error"`
				Description string `json:"error_description"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if got.Error != tc.code || !strings.Contains(got.Description, tc.desc) {
				t.Errorf("error %q (%q), want %q containing %q", got.Error, got.Description, tc.code, tc.desc)
			}
			if strings.Contains(string(body), "evil.example.com") {
				t.Errorf("the response echoes the request's target: %s", body)
			}
			if resp.Header.Get("WWW-Authenticate") != "" {
				t.Error("the token endpoint sends no challenge")
			}
			if tc.reason != "" {
				if n := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason)); n != rejBefore+1 {
					t.Errorf("rejections{reason=%s} moved by %v, want 1", tc.reason, n-rejBefore)
				}
			}
		})
	}
}

// TestTokenEndpointScopeErrorBounded: invalid_scope names the refused
// scopes, each cut short: a client's parameter is never echoed unbounded.
func TestTokenEndpointScopeErrorBounded(t *testing.T) {
	env, _ := tokenEnv(t, nil)
	huge := "orders:" + strings.Repeat("x", 3000)
	resp, body := env.post(t, tokenPath, formType, with(exchangeForm(umbrella, audOrders), "scope", huge).Encode())
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_scope") {
		t.Fatalf("status %d: %.200s", resp.StatusCode, body)
	}
	if len(body) > 512 || strings.Contains(string(body), strings.Repeat("x", 100)) {
		t.Errorf("the response echoes the requested scope unbounded (%d bytes)", len(body))
	}
}
