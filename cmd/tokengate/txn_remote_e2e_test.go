package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// e2eTTS is a Txn-Token Service: it answers txn_token requests with a
// JWS-shaped Txn-Token whose txn counts calls, or with issuedType.
type e2eTTS struct {
	*oauthtest.STS
	mu         sync.Mutex
	issuedType string
}

func newE2ETTS(t *testing.T) *e2eTTS {
	s := &e2eTTS{issuedType: "urn:ietf:params:oauth:token-type:txn_token"}
	s.STS = oauthtest.NewSTS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if id, secret, ok := r.BasicAuth(); !ok || id != e2eSTSClient || secret != e2eSTSSecret {
			writeJSONTest(w, 401, map[string]string{"error": "invalid_client"})
			return
		}
		s.mu.Lock()
		issued := s.issuedType
		s.mu.Unlock()
		if r.PostForm.Get("requested_token_type") != "urn:ietf:params:oauth:token-type:txn_token" {
			writeJSONTest(w, 400, map[string]string{"error": "invalid_request"})
			return
		}
		payload, _ := json.Marshal(map[string]any{"txn": fmt.Sprintf("tts-txn-%d", n), "aud": r.PostForm.Get("audience")})
		writeJSONTest(w, 200, map[string]any{
			"access_token":      "eyJ0eXAiOiJ0eG50b2tlbitqd3QiLCJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(payload) + ".c2ln",
			"issued_token_type": issued,
			"token_type":        "N_A",
		})
	})
	return s
}

func (s *e2eTTS) calls() []url.Values {
	var forms []url.Values
	for _, c := range s.Calls() {
		forms = append(forms, c.Form)
	}
	return forms
}

func TestE2ETxnTokenRemote(t *testing.T) {
	idp, tts := newE2EIdP(t), newE2ETTS(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startRemoteE2EWith(t, idp, "token_endpoint: "+tts.TokenURL(), orders, inventory, func(text string) string {
		text = strings.Replace(text, "routes:\n", "txn_token:\n  trust_domain: "+txnTrustDomain+"\nroutes:\n", 1)
		return strings.Replace(text, "    scopes: [orders:read, orders:write]\n", "    scopes: [orders:read, orders:write]\n    forward: txn_token\n", 1)
	})

	umbrella := idp.mint(t, map[string]any{"sub": "user-3", "aud": []string{audOrders}, "scope": "orders:read admin:all"})
	for i := 1; i <= 2; i++ {
		resp, body := txnGet(t, g, "/orders/1", umbrella, map[string]string{"Txn-Token": "forged"})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
		want := fmt.Sprintf("tts-txn-%d", i)
		if resp.Header.Get("X-Request-Id") != want {
			t.Errorf("request %d: X-Request-Id %q, want the TTS's txn %q", i, resp.Header.Get("X-Request-Id"), want)
		}
		r := orders.received()[i-1]
		if r.Header.Get("Authorization") != "" || r.Header.Get("X-Request-Id") != want ||
			!strings.HasPrefix(r.Header.Get("Txn-Token"), "eyJ0eXAiOiJ0eG50b2tlbitqd3Qi") {
			t.Errorf("request %d upstream headers: %v", i, r.Header)
		}
	}
	calls := tts.calls()
	if len(calls) != 2 {
		t.Fatalf("%d TTS calls for 2 requests, want 2 (Txn-Tokens are never cached)", len(calls))
	}
	f := calls[0]
	if f.Get("audience") != txnTrustDomain || f.Get("scope") != "orders:read" || f.Get("subject_token") != umbrella ||
		!strings.Contains(f.Get("request_context"), `"req_ip":"127.0.0.1"`) {
		t.Errorf("Txn-Token request = %v", f)
	}

	// A TTS that answers with an access token is refused: 503, nothing forwarded.
	tts.mu.Lock()
	tts.issuedType = "urn:ietf:params:oauth:token-type:access_token"
	tts.mu.Unlock()
	resp, body := txnGet(t, g, "/orders/1", umbrella, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || len(orders.received()) != 2 {
		t.Errorf("wrong issued_token_type: %d %s, %d upstream requests", resp.StatusCode, body, len(orders.received()))
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory)
}
