package sts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sony/gobreaker/v2"

	"github.com/tokengate/tokengate/exchange"
)

// rtJWTClaims is a JWS-shaped issued token with these claims (unsigned: the
// gateway does not verify what the STS issues).
func rtJWTClaims(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"ES256","typ":"at+jwt"}`)) + "." + enc(b) + ".c2lnbmF0dXJl"
}

// TestRemoteExtraParamsOnTheWire: extra_params reach the STS as form
// parameters next to the RFC 8693 ones, which they never replace, and the
// Txn-Token request carries them too.
func TestRemoteExtraParamsOnTheWire(t *testing.T) {
	sts := newRTSTS(t, rtOK(60))
	cfg := rtConfig(sts.URL())
	cfg.ExtraParams = map[string]string{"connector_id": "ldap", "requested_issuer": "google", "audience": "https://evil.example.com"}
	env := newRTEnv(t, cfg)
	if _, err := env.remote.Exchange(context.Background(), rtRequest("orders:read")); err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	form := sts.Calls()[0].Form
	if form.Get("connector_id") != "ldap" || form.Get("requested_issuer") != "google" {
		t.Errorf("form %v lacks the extra parameters", form)
	}
	if got := form["audience"]; len(got) != 1 || got[0] != rtAudience {
		t.Errorf("audience = %v: an extra parameter replaced or joined it", got)
	}
	if form.Get("grant_type") != grantTokenExchange || form.Get("subject_token") != rtUmbrella {
		t.Errorf("form %v lost an RFC 8693 parameter", form)
	}

	sts.setHandle(ttSTSOK(ttSTSToken("txn-1", rtNow.Add(time.Minute)), exchange.TokenTypeTxnToken))
	rt, err := NewRemoteTxn(env.remote, ttOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.MintTxnToken(context.Background(), ttRemoteRequest()); err != nil {
		t.Fatalf("MintTxnToken: %v", err)
	}
	if f := sts.Calls()[1].Form; f.Get("connector_id") != "ldap" || f.Get("audience") != ttTrustDomain {
		t.Errorf("Txn-Token request form %v", f)
	}
}

// TestRemoteFingerprintCoversExtraParams: a change of any extra parameter,
// name or value, changes the cache key's fingerprint.
func TestRemoteFingerprintCoversExtraParams(t *testing.T) {
	fp := func(extra map[string]string) string {
		c := rtConfig("https://sts.example.com/token")
		c.ExtraParams = extra
		r, err := NewRemote(RemoteOptions{Config: c, TokenTTL: time.Minute, HTTPClient: &http.Client{}})
		if err != nil {
			t.Fatal(err)
		}
		if v := extra["secret_param"]; v != "" && strings.Contains(r.Fingerprint(), v) {
			t.Fatalf("fingerprint %q shows a value", r.Fingerprint())
		}
		return r.Fingerprint()
	}
	variants := []map[string]string{
		nil,
		{"connector_id": "ldap"},
		{"connector_id": "github"},
		{"connector_ids": "ldap"},
		{"connector_id": "ldap", "tenant": "a"},
		{"connector_id": "ldap=tenant", "": ""},
		{"secret_param": "hunter2"},
	}
	seen := map[string]int{}
	for i, v := range variants {
		got := fp(v)
		if j, dup := seen[got]; dup {
			t.Errorf("extra_params %v and %v give the same fingerprint", variants[j], v)
		}
		seen[got] = i
	}
	if fp(map[string]string{"a": "1", "b": "2"}) != fp(map[string]string{"b": "2", "a": "1"}) {
		t.Error("the fingerprint depends on map order")
	}
}

// TestRemoteIssuedTokenAudience: a JWT the STS issues must name the route's
// audience (string or array) and not be expired; else 503 (unavailable),
// result="invalid_response", and a log line naming the STS, never a token.
// Opaque tokens are not inspected.
func TestRemoteIssuedTokenAudience(t *testing.T) {
	future, past := rtNow.Add(time.Minute).Unix(), rtNow.Add(-time.Minute).Unix()
	tests := []struct {
		name  string
		token string
		ok    bool
		inErr string
	}{
		{"aud string", rtJWTClaims(map[string]any{"aud": rtAudience, "exp": future}), true, ""},
		{"aud array", rtJWTClaims(map[string]any{"aud": []string{"https://other.example.com", rtAudience}, "exp": future}), true, ""},
		{"no exp", rtJWTClaims(map[string]any{"aud": rtAudience}), true, ""},
		{"opaque", "opaque-token-0123456789", true, ""},
		{"JWE (five parts)", "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", true, ""},
		{"another audience", rtJWTClaims(map[string]any{"aud": "https://billing.example.com", "exp": future}), false, `does not name "https://orders.example.com"`},
		{"array without it", rtJWTClaims(map[string]any{"aud": []string{"a", "b"}, "exp": future}), false, "does not name"},
		{"no aud", rtJWTClaims(map[string]any{"exp": future}), false, "has no aud"},
		{"aud a number", rtJWTClaims(map[string]any{"aud": 7, "exp": future}), false, "aud: not a string"},
		{"expired", rtJWTClaims(map[string]any{"aud": rtAudience, "exp": past}), false, "it expired at"},
		{"exp text", rtJWTClaims(map[string]any{"aud": rtAudience, "exp": "soon"}), false, "exp is not a number"},
		{"payload not JSON", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256"}`)) + ".bm90IGpzb24.sig", false, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := newRTSTS(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				rtJSON(w, http.StatusOK, map[string]any{"access_token": tt.token, "issued_token_type": exchange.TokenTypeJWT, "token_type": "Bearer", "expires_in": 60})
			})
			env := newRTEnv(t, rtConfig(sts.URL()))
			res, err := env.remote.Exchange(context.Background(), rtRequest("orders:read"))
			result := "ok"
			if !tt.ok {
				result = "invalid_response"
				if err == nil || !errors.Is(err, exchange.ErrExchangeUnavailable) || errors.Is(err, exchange.ErrSTSConfig) || !strings.Contains(err.Error(), tt.inErr) {
					t.Fatalf("Exchange = %+v, %v; want unavailable containing %q", res, err, tt.inErr)
				}
				if strings.Contains(err.Error(), tt.token) || strings.Contains(env.logs.String(), tt.token) {
					t.Error("the error or the logs hold the issued token")
				}
				if !strings.Contains(env.logs.String(), `"sts":"`+sts.URL()+`"`) {
					t.Errorf("the log does not name the STS:\n%s", env.logs)
				}
				if n := len(sts.Calls()); n != 1 {
					t.Errorf("%d STS calls: an unusable answer is not retried", n)
				}
			} else if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if got := testutil.ToFloat64(env.metrics.Exchanges.WithLabelValues(rtAudience, "remote", result)); got != 1 {
				t.Errorf("exchanges{result=%q} = %v, want 1", result, got)
			}
		})
	}
}

// TestRemoteTxnTokenAudience: a Txn-Token from a remote Txn-Token service
// must be for the trust domain and unexpired.
func TestRemoteTxnTokenAudience(t *testing.T) {
	tok := func(aud any, exp time.Time) string {
		payload, _ := json.Marshal(map[string]any{"txn": "txn-1", "exp": exp.Unix(), "aud": aud})
		return "eyJ0eXAiOiJ0eG50b2tlbitqd3QiLCJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(payload) + ".sig"
	}
	tests := []struct {
		name  string
		token string
		inErr string
	}{
		{"trust domain", tok(ttTrustDomain, rtNow.Add(time.Minute)), ""},
		{"in an array", tok([]string{ttTrustDomain}, rtNow.Add(time.Minute)), ""},
		{"another domain", tok("https://other-domain.example", rtNow.Add(time.Minute)), "does not name"},
		{"expired", tok(ttTrustDomain, rtNow.Add(-time.Second)), "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := newRTSTS(t, ttSTSOK(tt.token, exchange.TokenTypeTxnToken))
			rt, _ := ttNewRemote(t, sts)
			_, err := rt.MintTxnToken(context.Background(), ttRemoteRequest())
			if tt.inErr == "" {
				if err != nil {
					t.Fatalf("MintTxnToken: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, exchange.ErrExchangeUnavailable) || !strings.Contains(err.Error(), tt.inErr) {
				t.Fatalf("MintTxnToken: %v, want unavailable containing %q", err, tt.inErr)
			}
		})
	}
}

// TestRemoteSTSConfigErrors: invalid_request, invalid_client,
// unauthorized_client and unsupported_grant_type are tokengate's
// configuration problems: ErrSTSConfig (503), result="sts_config_error",
// logged at error with the STS's description, not retried, not a breaker
// failure, and the STS is degraded until it accepts a request again.
func TestRemoteSTSConfigErrors(t *testing.T) {
	for _, code := range []string{"invalid_request", "invalid_client", "unauthorized_client", "unsupported_grant_type", "unsupported_token_type"} {
		t.Run(code, func(t *testing.T) {
			status := http.StatusBadRequest
			if code == "invalid_client" {
				status = http.StatusUnauthorized
			}
			var fail atomic.Bool
			fail.Store(true)
			sts := newRTSTS(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if fail.Load() {
					rtJSON(w, status, map[string]string{"error": code, "error_description": "client tokengate: " + code + " explained"})
					return
				}
				rtOK(60)(w, r, n)
			})
			env := newRTEnv(t, rtConfig(sts.URL()), func(o *RemoteOptions) { o.BreakerThreshold = 1 })
			_, err := env.remote.Exchange(context.Background(), rtRequest())
			if !errors.Is(err, exchange.ErrSTSConfig) || !errors.Is(err, exchange.ErrExchangeUnavailable) {
				t.Fatalf("err = %v, want ErrSTSConfig", err)
			}
			if n := len(sts.Calls()); n != 1 {
				t.Errorf("%d calls, want 1 (not retried)", n)
			}
			if got := testutil.ToFloat64(env.metrics.Exchanges.WithLabelValues(rtAudience, "remote", "sts_config_error")); got != 1 {
				t.Errorf("exchanges{result=sts_config_error} = %v", got)
			}
			logs := env.logs.String()
			if !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, code+" explained") {
				t.Errorf("no error log with the STS's description:\n%s", logs)
			}
			if env.remote.breaker.state() != gobreaker.StateClosed {
				t.Error("a configuration error tripped the breaker")
			}
			deg := env.remote.Degraded(context.Background())
			if deg == nil || !strings.Contains(deg.Error(), code) {
				t.Errorf("Degraded = %v, want the refusal", deg)
			}
			fail.Store(false)
			if _, err := env.remote.Exchange(context.Background(), rtRequest()); err != nil {
				t.Fatal(err)
			}
			if deg := env.remote.Degraded(context.Background()); deg != nil {
				t.Errorf("Degraded after a success = %v", deg)
			}
		})
	}
}

// TestRemoteDegradedWhileBreakerOpen: an open breaker is a degraded STS.
func TestRemoteDegradedWhileBreakerOpen(t *testing.T) {
	sts := newRTSTS(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusBadGateway) })
	cfg := rtConfig(sts.URL())
	env := newRTEnv(t, cfg, func(o *RemoteOptions) {
		o.BreakerThreshold, o.MaxAttempts, o.BreakerCooldown = 1, 1, rtBreakerCooldown
	})
	if env.remote.Degraded(context.Background()) != nil {
		t.Fatal("degraded before any call")
	}
	_, _ = env.remote.Exchange(context.Background(), rtRequest())
	if err := env.remote.Degraded(context.Background()); err == nil || !strings.Contains(err.Error(), "circuit open") {
		t.Errorf("Degraded = %v, want circuit open", err)
	}
	// Once the open period is over, the next call is a probe: not degraded.
	rtEventually(t, "Degraded to clear after the open period", func() bool {
		return env.remote.Degraded(context.Background()) == nil
	})
}

// TestSTSErrorPublicDescription: the STS's description reaches the client
// only when short, and nothing in it looks like a token.
func TestSTSErrorPublicDescription(t *testing.T) {
	tests := map[string]string{
		"audience https://billing.example.com is not allowed for this client": "audience https://billing.example.com is not allowed for this client",
		"":                                   "",
		"token eyJhbGciOiJFUzI1NiJ9 refused": "",
		"bad " + strings.Repeat("A", 40):     "",
		"echo [redacted]":                    "",
		strings.Repeat("word ", 40):          "",
		"scope orders:write needs acr urn:mace:incommon:iap:silver, got bronze": "scope orders:write needs acr urn:mace:incommon:iap:silver, got bronze",
	}
	for in, want := range tests {
		if got := (&exchange.STSError{Description: in}).PublicDescription(); got != want {
			t.Errorf("PublicDescription(%q) = %q, want %q", in, got, want)
		}
	}
}
