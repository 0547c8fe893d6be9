package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestAuthzForwardModes: both adapters hand over what the route's forward
// names, and only that: access_token, txn_token (authorization removed),
// both; the Txn-Token's txn is the request id, and the rctx IP is the
// client per server.trusted_proxies.
func TestAuthzForwardModes(t *testing.T) {
	for _, tc := range []struct {
		forward           string
		wantAuth, wantTxn bool
	}{
		{"access_token", true, false},
		{"txn_token", false, true},
		{"both", true, true},
	} {
		t.Run(tc.forward, func(t *testing.T) {
			minter := &fakeMinter{}
			env, _, _ := newTxnEnv(t, tc.forward, minter)
			authz := httptest.NewServer(http.HandlerFunc(env.gw.ServeAuthz))
			t.Cleanup(authz.Close)
			resp, _ := rawDo(t, authz.URL, http.MethodGet, "/", http.Header{
				"Authorization": {"Bearer " + umbrella}, "X-Original-Uri": {"/orders/1"},
				"X-Forwarded-For": {"203.0.113.9"}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("forward-auth: %d", resp.StatusCode)
			}
			if got := resp.Header.Get("Authorization") != ""; got != tc.wantAuth {
				t.Errorf("forward-auth Authorization %q, want set=%v", resp.Header.Get("Authorization"), tc.wantAuth)
			}
			if got := resp.Header.Get(headerTxnToken) != ""; got != tc.wantTxn {
				t.Errorf("forward-auth Txn-Token %q, want set=%v", resp.Header.Get(headerTxnToken), tc.wantTxn)
			}
			if tc.wantTxn && resp.Header.Get("X-Request-Id") != "txn-1" {
				t.Errorf("X-Request-Id %q, want the txn", resp.Header.Get("X-Request-Id"))
			}

			res, err := env.gw.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: "GET", Host: "api.test", Path: "/orders/1",
					Headers: map[string]string{"authorization": "Bearer " + umbrella, "txn-token": "client-forged"},
				}},
			}})
			if err != nil {
				t.Fatal(err)
			}
			ok := res.GetOkResponse()
			set := map[string]string{}
			for _, h := range ok.GetHeaders() {
				set[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
			}
			removed := ok.GetHeadersToRemove()
			if _, got := set["authorization"]; got != tc.wantAuth {
				t.Errorf("ext_authz sets authorization=%v, want %v", got, tc.wantAuth)
			}
			if !tc.wantAuth && !slices.Contains(removed, "authorization") {
				t.Errorf("ext_authz headers_to_remove %v: the umbrella token would reach the upstream", removed)
			}
			if _, got := set["txn-token"]; got != tc.wantTxn {
				t.Errorf("ext_authz sets txn-token=%v, want %v", got, tc.wantTxn)
			}
			if !tc.wantTxn && !slices.Contains(removed, "txn-token") {
				t.Errorf("ext_authz headers_to_remove %v: the client's Txn-Token would reach the upstream", removed)
			}
			if tc.wantTxn {
				// Untrusted peer: the rctx IP is the peer, not X-Forwarded-For.
				if ip := minter.requests()[0].Context.IP; ip != "127.0.0.1" {
					t.Errorf("rctx IP %q, want the peer", ip)
				}
			}
		})
	}
}

// TestAuthzClientIP: behind a trusted ingress, the Txn-Token's rctx IP is
// the client from X-Forwarded-For, as server.trusted_proxies says.
func TestAuthzClientIP(t *testing.T) {
	minter := &fakeMinter{}
	env, _, _ := newTxnEnv(t, "txn_token", minter)
	env.gw.proxies, _ = newTrustedProxies([]string{"127.0.0.1/32"})
	authz := httptest.NewServer(http.HandlerFunc(env.gw.ServeAuthz))
	t.Cleanup(authz.Close)
	resp, _ := rawDo(t, authz.URL, http.MethodGet, "/", http.Header{
		"Authorization": {"Bearer " + umbrella}, "X-Original-Uri": {"/orders/1"},
		"X-Forwarded-For": {"203.0.113.9"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ip := minter.requests()[0].Context.IP; ip != "203.0.113.9" {
		t.Errorf("rctx IP %q, want the client behind the trusted ingress", ip)
	}
}
