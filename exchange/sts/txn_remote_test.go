package sts

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// ttSTSToken is a JWS-shaped Txn-Token the fake TTS issues (unsigned: the
// gateway never verifies it, the services do).
func ttSTSToken(txn string, exp time.Time) string {
	payload, _ := json.Marshal(map[string]any{"txn": txn, "exp": exp.Unix(), "aud": ttTrustDomain})
	return "eyJ0eXAiOiJ0eG50b2tlbitqd3QiLCJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(payload) + ".sig"
}

func ttSTSOK(token, issuedType string) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		rtJSON(w, http.StatusOK, map[string]any{
			"access_token": token, "issued_token_type": issuedType, "token_type": "N_A",
		})
	}
}

func ttRemoteRequest() exchange.TxnRequest {
	c := exchange.Claims{
		Subject: "user-1", Expiry: rtNow.Add(time.Hour), Scopes: []string{"orders:read", "billing:read"},
		Extra: map[string]json.RawMessage{"tenant": json.RawMessage(`"acme"`), "acr": json.RawMessage(`"mfa"`)},
	}
	return exchange.TxnRequest{
		Subject: exchange.NewToken(rtUmbrella, sha256.Sum256([]byte(rtUmbrella)), c, ""),
		Scopes:  []string{"orders:read"},
		Context: exchange.TxnContext{IP: "203.0.113.7", Transport: "http", Method: "GET", Route: "orders"},
	}
}

func ttNewRemote(t *testing.T, sts *rtSTS) (*RemoteTxn, *rtEnv) {
	t.Helper()
	env := newRTEnv(t, rtConfig(sts.URL()))
	opts := ttOptions()
	opts.ContextClaims = []string{"tenant"}
	rt, err := NewRemoteTxn(env.remote, opts)
	if err != nil {
		t.Fatalf("NewRemoteTxn: %v", err)
	}
	return rt, env
}

func TestRemoteTxnRequest(t *testing.T) {
	token := ttSTSToken("txn-0001", rtNow.Add(30*time.Second))
	sts := newRTSTS(t, ttSTSOK(token, exchange.TokenTypeTxnToken))
	rt, _ := ttNewRemote(t, sts)
	res, err := rt.MintTxnToken(context.Background(), ttRemoteRequest())
	if err != nil {
		t.Fatalf("MintTxnToken: %v", err)
	}
	if res.Token != token || res.Txn != "txn-0001" {
		t.Errorf("result = %+v", res)
	}
	if want := rtNow.Add(30 * time.Second); !res.ExpiresAt.Equal(want) {
		t.Errorf("ExpiresAt = %v, want the token's exp %v (under the 60s ttl)", res.ExpiresAt, want)
	}
	calls := sts.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d STS calls, want 1", len(calls))
	}
	f := calls[0].Form
	want := map[string]string{
		"grant_type":           "urn:ietf:params:oauth:grant-type:token-exchange",
		"requested_token_type": "urn:ietf:params:oauth:token-type:txn_token",
		"audience":             ttTrustDomain,
		"scope":                "orders:read",
		"subject_token":        rtUmbrella,
		"subject_token_type":   exchange.TokenTypeAccessToken,
	}
	for k, v := range want {
		if got := f.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !oauthtest.JSONEqual(t, json.RawMessage(f.Get("request_context")), `{"req_ip":"203.0.113.7","transport":"http","req_method":"GET","req_route":"orders"}`) {
		t.Errorf("request_context = %s", f.Get("request_context"))
	}
	if !oauthtest.JSONEqual(t, json.RawMessage(f.Get("request_details")), `{"tenant":"acme"}`) {
		t.Errorf("request_details = %s (only the configured context claims)", f.Get("request_details"))
	}
	if user, pass, ok := (&http.Request{Header: calls[0].Header}).BasicAuth(); !ok || user != "tokengate" || pass != "s3cr3t" {
		t.Errorf("client authentication = %q %q %v, want the exchange's client_secret_basic", user, pass, ok)
	}
}

func TestRemoteTxnFailures(t *testing.T) {
	good := ttSTSToken("txn-1", rtNow.Add(time.Minute))
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request, n int)
		check  func(error) bool
		want   string
	}{
		{"issued an access token", ttSTSOK(good, exchange.TokenTypeAccessToken),
			func(err error) bool { return errors.Is(err, exchange.ErrExchangeUnavailable) }, "is not urn:ietf:params:oauth:token-type:txn_token"},
		{"no issued_token_type", ttSTSOK(good, ""),
			func(err error) bool { return errors.Is(err, exchange.ErrExchangeUnavailable) }, "issued_token_type"},
		{"no txn claim", ttSTSOK("a.eyJleHAiOjF9.c", exchange.TokenTypeTxnToken),
			func(err error) bool { return errors.Is(err, exchange.ErrExchangeUnavailable) }, "no usable txn claim"},
		{"txn with a newline", ttSTSOK(ttSTSToken("a\nb", rtNow.Add(time.Minute)), exchange.TokenTypeTxnToken),
			func(err error) bool { return errors.Is(err, exchange.ErrExchangeUnavailable) }, "no usable txn claim"},
		{"outage", func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusBadGateway) },
			func(err error) bool { return errors.Is(err, exchange.ErrExchangeUnavailable) }, "502"},
		{"denied", func(w http.ResponseWriter, _ *http.Request, _ int) {
			rtJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_scope"})
		}, func(err error) bool { return errors.Is(err, exchange.ErrExchangeDenied) }, "invalid_scope"},
		{"subject rejected", func(w http.ResponseWriter, _ *http.Request, _ int) {
			rtJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
		}, func(err error) bool {
			var re *exchange.RejectError
			return errors.As(err, &re) && re.Reason == exchange.ReasonSTSRejected
		}, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := newRTSTS(t, tt.handle)
			rt, _ := ttNewRemote(t, sts)
			res, err := rt.MintTxnToken(context.Background(), ttRemoteRequest())
			if err == nil {
				t.Fatalf("MintTxnToken = %+v, want an error", res)
			}
			if !tt.check(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q of the right kind", err, tt.want)
			}
			if strings.Contains(err.Error(), rtUmbrella) {
				t.Error("the error holds the umbrella token")
			}
		})
	}
}

func TestRemoteTxnRefusesBeforeCalling(t *testing.T) {
	sts := newRTSTS(t, ttSTSOK(ttSTSToken("t", rtNow.Add(time.Minute)), exchange.TokenTypeTxnToken))
	rt, _ := ttNewRemote(t, sts)
	wider := ttRemoteRequest()
	wider.Scopes = []string{"admin"}
	if _, err := rt.MintTxnToken(context.Background(), wider); !errors.Is(err, exchange.ErrTxnUnavailable) {
		t.Errorf("wider scope: err = %v, want ErrTxnUnavailable", err)
	}
	expired := ttRemoteRequest()
	expired.Subject.Claims.Expiry = rtNow
	var re *exchange.RejectError
	if _, err := rt.MintTxnToken(context.Background(), expired); !errors.As(err, &re) || re.Reason != exchange.ReasonExpired {
		t.Errorf("expired umbrella: err = %v, want rejection expired", err)
	}
	if n := len(sts.Calls()); n != 0 {
		t.Errorf("%d STS calls, want none", n)
	}
}
