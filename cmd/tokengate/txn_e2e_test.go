package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

const txnTrustDomain = "trust-domain.example"

// withTxn turns on Transaction Tokens in the e2e configuration: orders
// forwards only a Txn-Token, inventory both tokens.
func withTxn(text, _ string) string {
	text = strings.Replace(text, "routes:\n", "txn_token:\n  trust_domain: "+txnTrustDomain+
		"\n  workload_id: apigw.trust-domain.example\n  ttl: 45s\n  context_claims: [tenant]\nroutes:\n", 1)
	text = strings.Replace(text, "    required_scopes: [orders:read]\n", "    required_scopes: [orders:read]\n    forward: txn_token\n", 1)
	return strings.Replace(text, "    scopes: [inventory:read]\n", "    scopes: [inventory:read]\n    forward: both\n", 1)
}

// txnGet sends a GET through the edge with the umbrella token and the
// headers a hostile client might add.
func txnGet(t *testing.T, g *e2eGateway, path, token string, extra map[string]string) (*http.Response, string) {
	t.Helper()
	return sendWith(t, http.MethodGet, g.srv.EdgeURL()+path, token, extra)
}

func TestE2ETxnTokenVerifiedByBackend(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: withTxn})
	umbrella := idp.mint(t, map[string]any{
		"sub": "user-1", "client_id": "spa", "tenant": map[string]any{"id": "acme"},
		"aud":   []string{audOrders, audInventory},
		"scope": "openid orders:read orders:write inventory:read",
	})
	hostile := map[string]string{
		"Txn-Token":       "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
		"X-Request-Id":    "client-id-1",
		"X-Forwarded-For": "198.51.100.66",
	}
	respO, body := txnGet(t, g, "/orders/42", umbrella, hostile)
	if respO.StatusCode != http.StatusOK {
		t.Fatalf("orders: %d %s", respO.StatusCode, body)
	}
	respI, body := txnGet(t, g, "/inventory/widgets", umbrella, hostile)
	if respI.StatusCode != http.StatusOK {
		t.Fatalf("inventory: %d %s", respI.StatusCode, body)
	}
	if respO.Header.Get("Txn-Token") != "" || respI.Header.Get("Txn-Token") != "" {
		t.Error("a Txn-Token was returned to the client")
	}

	client := &http.Client{Timeout: 5 * time.Second}
	// A service of the trust domain verifies the Txn-Token with go-jose:
	// keys from the admin listener's discovery, aud = the trust domain.
	verifier := newDemoBackend("txn", txnTrustDomain, g.issuer, client)
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	cases := []struct {
		name     string
		b        *e2eBackend
		resp     *http.Response
		wantAuth bool
		scope    string
	}{
		{"orders forward txn_token", orders, respO, false, "orders:read orders:write"},
		{"inventory forward both", inventory, respI, true, "inventory:read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reqs := tc.b.received()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if vals := r.Header.Values("Txn-Token"); len(vals) != 1 {
				t.Fatalf("Txn-Token headers = %q, want exactly one", vals)
			}
			claims, header, err := verifier.verify(context.Background(), "Bearer "+r.Header.Get("Txn-Token"))
			if err != nil {
				t.Fatalf("the Txn-Token does not verify with go-jose + discovery: %v", err)
			}
			if header["typ"] != "txntoken+jwt" {
				t.Errorf("typ = %v, want txntoken+jwt", header["typ"])
			}
			if claims["aud"] != txnTrustDomain || claims["iss"] != g.issuer {
				t.Errorf("aud %v iss %v", claims["aud"], claims["iss"])
			}
			iat, _ := claims["iat"].(float64)
			exp, _ := claims["exp"].(float64)
			if exp-iat != 45 {
				t.Errorf("exp - iat = %v, want the 45s ttl", exp-iat)
			}
			txn, _ := claims["txn"].(string)
			if !uuid.MatchString(txn) {
				t.Errorf("txn %q is not a UUIDv4", txn)
			}
			if r.Header.Get("X-Request-Id") != txn || tc.resp.Header.Get("X-Request-Id") != txn {
				t.Errorf("X-Request-Id upstream %q, to the client %q; want the txn %q",
					r.Header.Get("X-Request-Id"), tc.resp.Header.Get("X-Request-Id"), txn)
			}
			if claims["sub"] != "user-1" || claims["scope"] != tc.scope || claims["req_wl"] != "apigw.trust-domain.example" {
				t.Errorf("sub %v scope %v req_wl %v", claims["sub"], claims["scope"], claims["req_wl"])
			}
			if tctx, _ := json.Marshal(claims["tctx"]); string(tctx) != `{"tenant":{"id":"acme"}}` {
				t.Errorf("tctx = %s", tctx)
			}
			rctx, _ := claims["rctx"].(map[string]any)
			if rctx["req_ip"] != "127.0.0.1" || rctx["req_method"] != "GET" || rctx["transport"] != "http" {
				t.Errorf("rctx = %v, want the connection's address (not X-Forwarded-For)", rctx)
			}
			if got := r.Header.Get("Authorization") != ""; got != tc.wantAuth {
				t.Errorf("Authorization upstream present = %v, want %v", got, tc.wantAuth)
			}
			if !strings.Contains(g.logs.String(), `"request_id":"`+txn+`"`) {
				t.Errorf("the access log does not carry request_id %s", txn)
			}
		})
	}
	if !strings.Contains(g.logs.String(), `"client_request_id":"client-id-1"`) {
		t.Error("the client's X-Request-Id is not logged as client_request_id")
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory)
}

// TestE2ETxnTokenNodeJose: a Node service verifies the Txn-Token with the
// jose npm package (typ, iss, aud, exp) from the gateway's discovery.
func TestE2ETxnTokenNodeJose(t *testing.T) {
	node := requireNode(t)
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	adminRe := regexp.MustCompile(`admin_listen: "([^"]+)"`)
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: func(text, edge string) string {
		text = withTxn(text, edge)
		m := adminRe.FindStringSubmatch(text)
		if m == nil {
			t.Fatal("no admin_listen in the configuration")
		}
		ready, _ := startNode(t, node, "txn-verifier.mjs", "http://"+m[1], txnTrustDomain)
		port, ok := ready["port"].(float64)
		if !ok {
			t.Fatalf("txn-verifier.mjs printed %v", ready)
		}
		return strings.Replace(text, fmt.Sprintf("upstream: %q", orders.srv.URL),
			fmt.Sprintf("upstream: %q", fmt.Sprintf("http://127.0.0.1:%d", int(port))), 1)
	}})
	umbrella := idp.mint(t, map[string]any{
		"sub": "user-2", "aud": []string{audOrders}, "scope": "orders:read",
	})
	resp, body := txnGet(t, g, "/orders/1", umbrella, map[string]string{"Txn-Token": "forged"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("node jose refused the Txn-Token: %d %s", resp.StatusCode, body)
	}
	var got struct {
		Header        map[string]any `json:"header"`
		Claims        map[string]any `json:"claims"`
		RequestID     string         `json:"requestId"`
		Authorization bool           `json:"authorization"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if got.Header["typ"] != "txntoken+jwt" || got.Claims["aud"] != txnTrustDomain || got.Claims["sub"] != "user-2" {
		t.Errorf("header %v claims %v", got.Header, got.Claims)
	}
	if txn := got.Claims["txn"]; txn == "" || txn != got.RequestID || txn != resp.Header.Get("X-Request-Id") {
		t.Errorf("txn %v, X-Request-Id upstream %q, to the client %q", txn, got.RequestID, resp.Header.Get("X-Request-Id"))
	}
	if got.Authorization {
		t.Error("an Authorization header reached the forward: txn_token service")
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory)
}
