package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// fakeMinter records Txn-Token requests and answers txn-token.N / txn-N, or err.
type fakeMinter struct {
	mu   sync.Mutex
	reqs []exchange.TxnRequest
	err  error
}

func (m *fakeMinter) MintTxnToken(_ context.Context, req exchange.TxnRequest) (*exchange.TxnResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reqs = append(m.reqs, req)
	if m.err != nil {
		return nil, m.err
	}
	n := len(m.reqs)
	return &exchange.TxnResult{Token: fmt.Sprintf("txn-token.%d", n), Txn: fmt.Sprintf("txn-%d", n)}, nil
}

func (m *fakeMinter) requests() []exchange.TxnRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]exchange.TxnRequest(nil), m.reqs...)
}

// newTxnEnv: route "orders" forwards forward, route "billing" access_token.
func newTxnEnv(t *testing.T, forward string, minter *fakeMinter) (*testEnv, *backend, *backend) {
	t.Helper()
	orders, billing := newBackend(t, nil), newBackend(t, nil)
	o := testRoute("orders", "/orders", orders.URL)
	o.Forward = forward
	o.ScopePrefix, o.StripScopePrefix = "orders:", true
	b := testRoute("billing", "/billing", billing.URL)
	env := newEnv(t, []config.Route{o, b}, func(opts *Options) { opts.TxnMinter = minter })
	env.verifier.add(umbrella, nil)
	return env, orders, billing
}

func TestTxnForwardModes(t *testing.T) {
	tests := []struct {
		forward    string
		wantAuth   bool
		wantTxn    bool
		wantExchRq int
	}{
		{config.ForwardAccessToken, true, false, 1},
		{config.ForwardTxnToken, false, true, 0},
		{config.ForwardBoth, true, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.forward, func(t *testing.T) {
			minter := &fakeMinter{}
			env, orders, _ := newTxnEnv(t, tt.forward, minter)
			resp, body := env.do(t, http.MethodPost, "/orders/1", func(r *http.Request) {
				bearer(umbrella)(r)
				r.Header.Set("X-Request-Id", "client-chosen-id")
				r.Header.Set("X-Forwarded-For", "198.51.100.99")
			})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			got := orders.requests()[0].Header
			if auth := got.Get("Authorization"); (auth != "") != tt.wantAuth || strings.Contains(auth, umbrella) {
				t.Errorf("Authorization upstream = %q, want present=%v and never the umbrella", auth, tt.wantAuth)
			}
			for name, vs := range got {
				for _, v := range vs {
					if strings.Contains(v, umbrella) {
						t.Errorf("header %s carries the umbrella token", name)
					}
				}
			}
			if reqs, _ := env.exch.snapshot(); len(reqs) != tt.wantExchRq {
				t.Errorf("%d exchanges, want %d", len(reqs), tt.wantExchRq)
			}
			if !tt.wantTxn {
				if got.Get("Txn-Token") != "" || len(minter.requests()) != 0 {
					t.Errorf("Txn-Token %q minted on an access_token route", got.Get("Txn-Token"))
				}
				if got.Get("X-Request-Id") != "client-chosen-id" {
					t.Errorf("X-Request-Id = %q, want the client's (unchanged behaviour)", got.Get("X-Request-Id"))
				}
				return
			}
			if got.Get("Txn-Token") != "txn-token.1" {
				t.Errorf("Txn-Token upstream = %q, want txn-token.1", got.Get("Txn-Token"))
			}
			if got.Get("X-Request-Id") != "txn-1" || resp.Header.Get("X-Request-Id") != "txn-1" {
				t.Errorf("X-Request-Id upstream %q, to the client %q; want the txn txn-1",
					got.Get("X-Request-Id"), resp.Header.Get("X-Request-Id"))
			}
			req := minter.requests()[0]
			if strings.Join(req.Scopes, " ") != "orders:read orders:write" {
				t.Errorf("Txn-Token scopes = %q, want the umbrella's own names (no stripping)", req.Scopes)
			}
			if req.Subject == nil || req.Subject.Claims.Subject != "alice-subject" {
				t.Errorf("subject = %v", req.Subject)
			}
			want := exchange.TxnContext{IP: "127.0.0.1", Transport: "http", Method: "POST", Route: "orders"}
			if req.Context != want {
				t.Errorf("rctx = %+v, want %+v (the connection's address, not X-Forwarded-For)", req.Context, want)
			}
			var line struct {
				RequestID       string `json:"request_id"`
				ClientRequestID string `json:"client_request_id"`
			}
			if err := json.Unmarshal([]byte(lastLine(env.logs.String())), &line); err != nil {
				t.Fatal(err)
			}
			if line.RequestID != "txn-1" || line.ClientRequestID != "client-chosen-id" {
				t.Errorf("access log request_id %q client_request_id %q", line.RequestID, line.ClientRequestID)
			}
			if n := testutil.ToFloat64(env.metrics.TxnTokens.WithLabelValues("orders", txnResultOK)); n != 1 {
				t.Errorf("txn_tokens_total ok = %v, want 1", n)
			}
		})
	}
}

func TestTxnClientHeaderStripped(t *testing.T) {
	for _, forward := range []string{config.ForwardAccessToken, config.ForwardTxnToken, config.ForwardBoth} {
		t.Run(forward, func(t *testing.T) {
			env, orders, billing := newTxnEnv(t, forward, &fakeMinter{})
			for _, path := range []string{"/orders/1", "/billing/1"} {
				resp, body := env.do(t, http.MethodGet, path, func(r *http.Request) {
					bearer(umbrella)(r)
					r.Header.Add("Txn-Token", "forged.by.client")
					r.Header.Add("txn-token", "second.forged")
				})
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d: %s", path, resp.StatusCode, body)
				}
			}
			for _, b := range []*backend{orders, billing} {
				for _, rq := range b.requests() {
					for _, v := range rq.Header.Values("Txn-Token") {
						if strings.Contains(v, "forged") {
							t.Errorf("%s: the client's Txn-Token reached the upstream: %q", rq.RequestURI, v)
						}
					}
					if n := len(rq.Header.Values("Txn-Token")); n > 1 {
						t.Errorf("%s: %d Txn-Token headers, want at most one", rq.RequestURI, n)
					}
				}
			}
		})
	}
}

func TestTxnResponseHeaderStripped(t *testing.T) {
	echo := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Txn-Token", r.Header.Get("Txn-Token"))
	})
	rt := testRoute("orders", "/orders", echo.URL)
	rt.Forward = config.ForwardTxnToken
	env := newEnv(t, []config.Route{rt}, func(o *Options) { o.TxnMinter = &fakeMinter{} })
	env.verifier.add(umbrella, nil)
	resp, _ := env.do(t, http.MethodGet, "/orders", bearer(umbrella))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Txn-Token") != "" {
		t.Errorf("status %d, Txn-Token to the client %q: it must never leave", resp.StatusCode, resp.Header.Get("Txn-Token"))
	}
}

func TestTxnMintFailures(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		result string
	}{
		{"outage", fmt.Errorf("sts: %w", exchange.ErrExchangeUnavailable), http.StatusServiceUnavailable, txnResultError},
		{"unknown error fails closed", errors.New("boom"), http.StatusServiceUnavailable, txnResultError},
		{"denied", fmt.Errorf("sts: %w", exchange.ErrExchangeDenied), http.StatusForbidden, txnResultRejected},
		{"rejected", exchange.Reject(exchange.ReasonSTSRejected, "refused", nil), http.StatusUnauthorized, txnResultRejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, orders, _ := newTxnEnv(t, config.ForwardTxnToken, &fakeMinter{err: tt.err})
			resp, body := env.do(t, http.MethodGet, "/orders/1", bearer(umbrella))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if n := len(orders.requests()); n != 0 {
				t.Errorf("%d requests reached the upstream, want none", n)
			}
			if strings.Contains(string(body), umbrella) || strings.Contains(env.logs.String(), umbrella) {
				t.Error("the umbrella token leaked into the response or the log")
			}
			if n := testutil.ToFloat64(env.metrics.TxnTokens.WithLabelValues("orders", tt.result)); n != 1 {
				t.Errorf("txn_tokens_total{result=%q} = %v, want 1", tt.result, n)
			}
		})
	}
}

func TestTxnPolicyBeforeMint(t *testing.T) {
	minter := &fakeMinter{}
	rt := testRoute("orders", "/orders", newBackend(t, nil).URL)
	rt.Forward = config.ForwardTxnToken
	rt.RequiredScopes = []string{"orders:delete"}
	env := newEnv(t, []config.Route{rt}, func(o *Options) { o.TxnMinter = minter })
	env.verifier.add(umbrella, nil)
	resp, _ := env.do(t, http.MethodGet, "/orders", bearer(umbrella))
	if resp.StatusCode != http.StatusForbidden || len(minter.requests()) != 0 {
		t.Errorf("status %d, %d mints: policy must refuse before any Txn-Token is made", resp.StatusCode, len(minter.requests()))
	}
}

func TestTxnMinterRequired(t *testing.T) {
	rt := testRoute("orders", "/orders", "http://127.0.0.1:1")
	rt.Forward = config.ForwardBoth
	_, err := New(Options{
		Config:   &config.Config{Routes: []config.Route{rt}},
		Verifier: newFakeVerifier(), Exchanger: newFakeExchanger(),
	})
	if err == nil || !strings.Contains(err.Error(), "routes[0].forward") {
		t.Fatalf("New = %v, want an error naming routes[0].forward", err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// A txn_token route makes no exchange, but its admission is the same: a
// DPoP-bound token still needs its proof before any Txn-Token is made.
func TestTxnRouteChecksDPoPBinding(t *testing.T) {
	key := newDPoPKey(t)
	minter := &fakeMinter{}
	be := newBackend(t, nil)
	rt := testRoute("orders", "/orders", be.URL)
	rt.Forward = config.ForwardTxnToken
	env := newEnv(t, []config.Route{rt}, func(o *Options) { o.TxnMinter = minter })
	env.verifier.add(tokBound, func(c *exchange.Claims) { c.JKT = key.jkt })

	tests := []struct {
		name   string
		auth   string
		proof  bool
		status int
		reason string
	}{
		{name: "bound token as Bearer", auth: "Bearer " + tokBound, proof: true, status: http.StatusUnauthorized, reason: ReasonDPoPRequired},
		{name: "bound token without a proof", auth: "DPoP " + tokBound, status: http.StatusUnauthorized, reason: ReasonDPoPProof},
		{name: "bound token with its proof", auth: "DPoP " + tokBound, proof: true, status: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(minter.requests())
			resp, _ := env.do(t, http.MethodGet, "/orders/1", func(r *http.Request) {
				r.Header.Set("Authorization", tc.auth)
				if tc.proof {
					r.Header.Set("DPoP", key.proof(t, http.MethodGet, env.edge.URL+"/orders/1", tokBound, nil))
				}
			})
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			minted := len(minter.requests()) - before
			if tc.status != http.StatusOK {
				if minted != 0 {
					t.Errorf("%d Txn-Tokens minted for a refused request", minted)
				}
				if n := testutil.ToFloat64(env.metrics.TokenRejections.WithLabelValues(tc.reason)); n < 1 {
					t.Errorf("rejections{reason=%q} = %v, want at least 1", tc.reason, n)
				}
				return
			}
			if minted != 1 {
				t.Errorf("%d Txn-Tokens minted, want 1", minted)
			}
		})
	}
}
