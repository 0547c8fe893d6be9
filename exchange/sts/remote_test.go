package sts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

func TestNewRemoteOptions(t *testing.T) {
	good := RemoteOptions{Config: rtConfig("https://sts.example.com/token"), TokenTTL: time.Minute, HTTPClient: &http.Client{}}
	tests := []struct {
		name   string
		mutate func(*RemoteOptions)
		want   string
	}{
		{"valid", func(*RemoteOptions) {}, ""},
		{"no endpoint", func(o *RemoteOptions) { o.Config.TokenEndpoint = "" }, "neither token_endpoint nor issuer"},
		{"no client", func(o *RemoteOptions) { o.Config.ClientID = "" }, "client_id is empty"},
		{"no ttl", func(o *RemoteOptions) { o.TokenTTL = 0 }, "token_ttl"},
		{"no http client", func(o *RemoteOptions) { o.HTTPClient = nil }, "HTTP client"},
		{"unknown auth", func(o *RemoteOptions) { o.Config.AuthMethod = "tls_client_auth" }, "not supported"},
		{"missing key file", func(o *RemoteOptions) {
			o.Config.AuthMethod = config.AuthPrivateKeyJWT
			o.Config.PrivateKey = config.SigningKey{File: "/nonexistent/k.pem", Alg: "ES256"}
		}, "exchange.remote.private_key: read client key"},
		{"key alg mismatch", func(o *RemoteOptions) {
			path, _ := rtWriteKey(t)
			o.Config.AuthMethod = config.AuthPrivateKeyJWT
			o.Config.PrivateKey = config.SigningKey{File: path, Alg: "RS256"}
		}, "alg RS256 needs an RSA key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.mutate(&o)
			_, err := NewRemote(o)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("NewRemote: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("NewRemote error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestRemoteClientAuthOnTheWire checks each client authentication method
// byte for byte: the Authorization header's RFC 6749 2.3.1 encoding, the
// form fields, and the private_key_jwt assertion verified with go-jose.
func TestRemoteClientAuthOnTheWire(t *testing.T) {
	keyPath, key := rtWriteKey(t)
	const id, secret = "tokengate:gw é", "p@ss:w+rd/ü%"
	tests := []struct {
		name  string
		cfg   func(c *config.Remote)
		check func(t *testing.T, c rtCall, endpoint string)
	}{
		{"client_secret_basic", func(c *config.Remote) {}, func(t *testing.T, c rtCall, _ string) {
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
			if got := c.Header.Get("Authorization"); got != want {
				t.Errorf("Authorization = %q, want %q", got, want)
			}
			// Decoding as the RFC says gives back the exact credentials.
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(c.Header.Get("Authorization"), "Basic "))
			u, p, _ := strings.Cut(string(raw), ":")
			if du, _ := url.QueryUnescape(u); du != id {
				t.Errorf("client id decodes to %q", du)
			}
			if dp, _ := url.QueryUnescape(p); dp != secret {
				t.Errorf("secret decodes to %q", dp)
			}
			for _, f := range []string{"client_id", "client_secret", "client_assertion"} {
				if c.Form.Has(f) {
					t.Errorf("form has %s with client_secret_basic", f)
				}
			}
		}},
		{"client_secret_post", func(c *config.Remote) { c.AuthMethod = config.AuthClientSecretPost }, func(t *testing.T, c rtCall, _ string) {
			if h := c.Header.Get("Authorization"); h != "" {
				t.Errorf("Authorization = %q, want none", h)
			}
			if c.Form.Get("client_id") != id || c.Form.Get("client_secret") != secret {
				t.Errorf("form client_id/secret = %q/%q", c.Form.Get("client_id"), c.Form.Get("client_secret"))
			}
		}},
		{"private_key_jwt", func(c *config.Remote) {
			c.AuthMethod = config.AuthPrivateKeyJWT
			c.ClientSecret = ""
			c.PrivateKey = config.SigningKey{File: keyPath, Alg: "ES256", Kid: "client-key-1"}
		}, func(t *testing.T, c rtCall, endpoint string) {
			if h := c.Header.Get("Authorization"); h != "" {
				t.Errorf("Authorization = %q, want none", h)
			}
			if c.Form.Has("client_secret") {
				t.Error("form has client_secret")
			}
			if got := c.Form.Get("client_assertion_type"); got != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
				t.Errorf("client_assertion_type = %q", got)
			}
			if c.Form.Get("client_id") != id {
				t.Errorf("client_id = %q", c.Form.Get("client_id"))
			}
			tok, err := jwt.ParseSigned(c.Form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256})
			if err != nil {
				t.Fatalf("assertion: %v", err)
			}
			if h := tok.Headers[0]; h.KeyID != "client-key-1" || h.ExtraHeaders["typ"] != "JWT" {
				t.Errorf("assertion header kid=%q typ=%v", h.KeyID, h.ExtraHeaders["typ"])
			}
			var claims jwt.Claims
			if err := tok.Claims(&key.PublicKey, &claims); err != nil {
				t.Fatalf("assertion signature: %v", err)
			}
			if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: id, Subject: id, AnyAudience: jwt.Audience{endpoint}, Time: rtNow}, 0); err != nil {
				t.Errorf("assertion claims: %v", err)
			}
			if claims.ID == "" || claims.IssuedAt == nil || claims.Expiry == nil {
				t.Fatalf("assertion lacks jti/iat/exp: %+v", claims)
			}
			if life := claims.Expiry.Time().Sub(claims.IssuedAt.Time()); life != time.Minute {
				t.Errorf("assertion lives %s, want 1m", life)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := newRTSTS(t, rtOK(300))
			cfg := rtConfig(sts.URL())
			cfg.ClientID, cfg.ClientSecret = id, secret
			tt.cfg(&cfg)
			env := newRTEnv(t, cfg)
			if _, err := env.remote.Exchange(context.Background(), rtRequest("orders:read")); err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			calls := sts.Calls()
			if len(calls) != 1 {
				t.Fatalf("%d calls", len(calls))
			}
			c := calls[0]
			if c.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || c.Header.Get("Accept") != "application/json" {
				t.Errorf("Content-Type %q, Accept %q", c.Header.Get("Content-Type"), c.Header.Get("Accept"))
			}
			for k, want := range map[string]string{
				"grant_type":           "urn:ietf:params:oauth:grant-type:token-exchange",
				"subject_token":        rtUmbrella,
				"subject_token_type":   exchange.TokenTypeAccessToken,
				"requested_token_type": exchange.TokenTypeAccessToken,
				"audience":             rtAudience,
				"scope":                "orders:read",
			} {
				if got := c.Form[k]; len(got) != 1 || got[0] != want {
					t.Errorf("form %s = %q, want %q", k, got, want)
				}
			}
			if c.Form.Has("resource") {
				t.Errorf("resource sent by default: %q", c.Form.Get("resource"))
			}
			tt.check(t, c, sts.URL())
		})
	}
}

func TestRemoteAssertionsAreFreshPerAttempt(t *testing.T) {
	keyPath, _ := rtWriteKey(t)
	sts := newRTSTS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			rtJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
			return
		}
		rtOK(60)(w, r, n)
	})
	cfg := rtConfig(sts.URL())
	cfg.AuthMethod, cfg.ClientSecret = config.AuthPrivateKeyJWT, ""
	cfg.PrivateKey = config.SigningKey{File: keyPath, Alg: "ES256"}
	cfg.AssertionAudience = "https://sts.example.com"
	env := newRTEnv(t, cfg)
	if _, err := env.remote.Exchange(context.Background(), rtRequest()); err != nil {
		t.Fatal(err)
	}
	calls := sts.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	var jtis []string
	for _, c := range calls {
		tok, err := jwt.ParseSigned(c.Form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		var claims jwt.Claims
		if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
			t.Fatal(err)
		}
		if len(claims.Audience) != 1 || claims.Audience[0] != "https://sts.example.com" {
			t.Errorf("aud = %v, want the configured assertion_audience", claims.Audience)
		}
		jtis = append(jtis, claims.ID)
	}
	if jtis[0] == jtis[1] {
		t.Error("a retry reused the client assertion's jti: STSs reject replayed assertions")
	}
}

func TestRemoteResourceAndScope(t *testing.T) {
	tests := []struct {
		name         string
		resource     config.Resource
		audience     string
		scopes       []string
		wantResource string // "" = absent
	}{
		{"off", config.Resource{}, rtAudience, []string{"a"}, ""},
		{"on", config.Resource{All: true}, rtAudience, []string{"a"}, rtAudience},
		{"listed", config.Resource{Audiences: []string{rtAudience}}, rtAudience, nil, rtAudience},
		{"not listed", config.Resource{Audiences: []string{"https://other.example.com"}}, rtAudience, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := newRTSTS(t, rtOK(60))
			cfg := rtConfig(sts.URL())
			cfg.Resource = tt.resource
			env := newRTEnv(t, cfg)
			req := rtRequestFor(rtUmbrella, rtNow.Add(time.Hour), tt.audience, tt.scopes...)
			if _, err := env.remote.Exchange(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			f := sts.Calls()[0].Form
			if got := f.Get("resource"); got != tt.wantResource || f.Has("resource") != (tt.wantResource != "") {
				t.Errorf("resource = %q (present %v), want %q", got, f.Has("resource"), tt.wantResource)
			}
			if want := strings.Join(tt.scopes, " "); f.Get("scope") != want || f.Has("scope") != (want != "") {
				t.Errorf("scope = %q (present %v), want %q", f.Get("scope"), f.Has("scope"), want)
			}
		})
	}
}

// rtJWT is a JWT-shaped token whose payload has exp (not signed: only the
// shape matters to the expiry reader).
func rtJWT(exp int64) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"at+jwt"}`)) + "." + enc([]byte(`{"sub":"u","aud":"`+rtAudience+`","exp":`+strconv.FormatInt(exp, 10)+`}`)) + ".sig"
}

func TestRemoteSuccessResponses(t *testing.T) {
	umbrellaExp := rtNow.Add(time.Hour)
	tests := []struct {
		name       string
		body       map[string]any
		contentTyp string
		umbrella   time.Time
		wantExp    time.Time
		wantScope  string
		wantType   string
	}{
		{"expires_in number", map[string]any{"access_token": rtIssued, "issued_token_type": exchange.TokenTypeAccessToken, "token_type": "Bearer", "expires_in": 120, "scope": "s"},
			"application/json", umbrellaExp, rtNow.Add(120 * time.Second), "s", exchange.TokenTypeAccessToken},
		{"expires_in numeric string", map[string]any{"access_token": rtIssued, "issued_token_type": exchange.TokenTypeJWT, "token_type": "bearer", "expires_in": "90"},
			"application/json;charset=UTF-8", umbrellaExp, rtNow.Add(90 * time.Second), "orders:read", exchange.TokenTypeJWT},
		{"expires_in above token_ttl is capped", map[string]any{"access_token": rtIssued, "issued_token_type": exchange.TokenTypeAccessToken, "token_type": "Bearer", "expires_in": 86400},
			"application/json", umbrellaExp, rtNow.Add(rtTTL), "orders:read", exchange.TokenTypeAccessToken},
		{"umbrella exp caps", map[string]any{"access_token": rtIssued, "issued_token_type": exchange.TokenTypeAccessToken, "token_type": "Bearer", "expires_in": 240},
			"application/json", rtNow.Add(time.Minute), rtNow.Add(time.Minute), "orders:read", exchange.TokenTypeAccessToken},
		{"no expires_in: the JWT's exp", map[string]any{"access_token": rtJWT(rtNow.Add(100 * time.Second).Unix()), "issued_token_type": exchange.TokenTypeAccessToken, "token_type": "Bearer"},
			"application/json", umbrellaExp, rtNow.Add(100 * time.Second), "orders:read", exchange.TokenTypeAccessToken},
		{"no expires_in, opaque token: token_ttl", map[string]any{"access_token": rtIssued, "issued_token_type": exchange.TokenTypeAccessToken, "token_type": "Bearer"},
			"application/json", umbrellaExp, rtNow.Add(rtTTL), "orders:read", exchange.TokenTypeAccessToken},
		{"expires_in null: token_ttl", map[string]any{"access_token": rtIssued, "issued_token_type": exchange.TokenTypeAccessToken, "token_type": "Bearer", "expires_in": nil},
			"application/json", umbrellaExp, rtNow.Add(rtTTL), "orders:read", exchange.TokenTypeAccessToken},
		{"N_A token type, no issued_token_type, no Content-Type", map[string]any{"access_token": rtIssued, "token_type": "N_A", "expires_in": 60},
			"", umbrellaExp, rtNow.Add(time.Minute), "orders:read", exchange.TokenTypeAccessToken},
		{"problem+json style type", map[string]any{"access_token": rtIssued, "issued_token_type": exchange.TokenTypeAccessToken, "token_type": "Bearer", "expires_in": 60.9},
			"application/vnd.sts+json", umbrellaExp, rtNow.Add(time.Minute), "orders:read", exchange.TokenTypeAccessToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := newRTSTS(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				if tt.contentTyp != "" {
					w.Header().Set("Content-Type", tt.contentTyp)
				} else {
					w.Header()["Content-Type"] = nil
				}
				b, _ := json.Marshal(tt.body)
				_, _ = w.Write(b)
			})
			env := newRTEnv(t, rtConfig(sts.URL()))
			res, err := env.remote.Exchange(context.Background(), rtRequestFor(rtUmbrella, tt.umbrella, rtAudience, "orders:read"))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if res.AccessToken != tt.body["access_token"] || res.TokenType != "Bearer" || res.IssuedTokenType != tt.wantType {
				t.Errorf("result %+v", res)
			}
			if !res.ExpiresAt.Equal(tt.wantExp) {
				t.Errorf("ExpiresAt = %s, want %s", res.ExpiresAt, tt.wantExp)
			}
			if res.Scope != tt.wantScope {
				t.Errorf("Scope = %q, want %q", res.Scope, tt.wantScope)
			}
		})
	}
}

// errKind is the caller-facing class of an exchange error.
type errKind int

const (
	kindRejected    errKind = iota // *RejectError: 401
	kindDenied                     // ErrExchangeDenied: 403
	kindUnavailable                // ErrExchangeUnavailable: 503
)

func kindOf(err error) errKind {
	var re *exchange.RejectError
	switch {
	case errors.As(err, &re):
		return kindRejected
	case errors.Is(err, exchange.ErrExchangeDenied):
		return kindDenied
	case errors.Is(err, exchange.ErrExchangeUnavailable):
		return kindUnavailable
	}
	return -1
}

// TestRemoteErrorShapes: every way an STS can fail, the class the caller
// sees, the STSError it carries, and whether it was retried.
func TestRemoteErrorShapes(t *testing.T) {
	huge := strings.Repeat("x", stsMaxBody+10)
	okBody := func(edit func(m map[string]any)) func(w http.ResponseWriter, r *http.Request, n int) {
		return func(w http.ResponseWriter, _ *http.Request, _ int) {
			m := map[string]any{"access_token": rtIssued, "issued_token_type": exchange.TokenTypeAccessToken, "token_type": "Bearer", "expires_in": 60}
			edit(m)
			rtJSON(w, http.StatusOK, m)
		}
	}
	raw := func(status int, ct, body string) func(w http.ResponseWriter, r *http.Request, n int) {
		return func(w http.ResponseWriter, _ *http.Request, _ int) {
			if ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	jsonErr := func(status int, code string) func(w http.ResponseWriter, r *http.Request, n int) {
		return func(w http.ResponseWriter, _ *http.Request, _ int) {
			rtJSON(w, status, map[string]string{"error": code, "error_description": "described " + code})
		}
	}
	tests := []struct {
		name       string
		handle     func(w http.ResponseWriter, r *http.Request, n int)
		kind       errKind
		status     int
		code       string
		calls      int    // STS calls made (3 = retried to the limit)
		inErr      string // substring of the error text
		wantReason string // RejectError reason
	}{
		{"400 invalid_grant", jsonErr(400, "invalid_grant"), kindRejected, 400, "invalid_grant", 1, "described invalid_grant", exchange.ReasonSTSRejected},
		{"401 invalid_token", jsonErr(401, "invalid_token"), kindRejected, 401, "invalid_token", 1, "", exchange.ReasonSTSRejected},
		{"400 invalid_target", jsonErr(400, "invalid_target"), kindDenied, 400, "invalid_target", 1, "described invalid_target", ""},
		{"400 invalid_scope", jsonErr(400, "invalid_scope"), kindDenied, 400, "invalid_scope", 1, "", ""},
		{"403 access_denied", jsonErr(403, "access_denied"), kindDenied, 403, "access_denied", 1, "", ""},
		{"401 invalid_client", jsonErr(401, "invalid_client"), kindUnavailable, 401, "invalid_client", 1, "", ""},
		{"400 unauthorized_client", jsonErr(400, "unauthorized_client"), kindUnavailable, 400, "unauthorized_client", 1, "", ""},
		{"400 invalid_request", jsonErr(400, "invalid_request"), kindUnavailable, 400, "invalid_request", 1, "", ""},
		{"403 without a JSON error", raw(403, "text/html", "<h1>Forbidden</h1>"), kindUnavailable, 403, "", 1, "no RFC 6749 error", ""},
		{"400 non-JSON body", raw(400, "text/plain", "bad request"), kindUnavailable, 400, "", 1, "", ""},
		{"400 JSON error with an HTML type", raw(400, "text/html", `{"error":"invalid_grant"}`), kindUnavailable, 400, "", 1, "", ""},
		{"500 JSON server_error", jsonErr(500, "server_error"), kindUnavailable, 500, "server_error", 3, "", ""},
		{"503 HTML page", raw(503, "text/html", "<html>maintenance</html>"), kindUnavailable, 503, "", 3, "", ""},
		{"502 empty", raw(502, "", ""), kindUnavailable, 502, "", 3, "", ""},
		{"429", jsonErr(429, "slow_down"), kindUnavailable, 429, "slow_down", 3, "", ""},
		{"error body too large", raw(400, "application/json", huge), kindUnavailable, 400, "", 1, "larger than", ""},
		{"302 is not followed", func(w http.ResponseWriter, r *http.Request, n int) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, kindUnavailable, 302, "", 1, "", ""},
		{"200 malformed JSON", raw(200, "application/json", `{"access_token": "abc", `), kindUnavailable, 200, "", 1, "truncated", ""},
		{"200 JSON array", raw(200, "application/json", `["abc"]`), kindUnavailable, 200, "", 1, "malformed token response", ""},
		{"200 trailing data", raw(200, "application/json", `{"access_token":"a","token_type":"Bearer"} {}`), kindUnavailable, 200, "", 1, "data after", ""},
		{"200 huge body", raw(200, "application/json", `{"access_token":"`+huge+`"}`), kindUnavailable, 200, "", 1, "larger than", ""},
		{"200 HTML", raw(200, "text/html; charset=utf-8", "<html>login</html>"), kindUnavailable, 200, "", 1, "is not JSON", ""},
		{"200 missing access_token", okBody(func(m map[string]any) { delete(m, "access_token") }), kindUnavailable, 200, "", 1, "no access_token", ""},
		{"200 access_token not a string", okBody(func(m map[string]any) { m["access_token"] = 42 }), kindUnavailable, 200, "", 1, "access_token", ""},
		{"200 access_token with a newline", okBody(func(m map[string]any) { m["access_token"] = "abc\r\nX-Evil: 1" }), kindUnavailable, 200, "", 1, "Authorization header", ""},
		{"200 token_type DPoP", okBody(func(m map[string]any) { m["token_type"] = "DPoP" }), kindUnavailable, 200, "", 1, `token_type "DPoP" is not Bearer`, ""},
		{"200 no token_type", okBody(func(m map[string]any) { delete(m, "token_type") }), kindUnavailable, 200, "", 1, "no token_type", ""},
		{"200 refresh token issued", okBody(func(m map[string]any) { m["issued_token_type"] = "urn:ietf:params:oauth:token-type:refresh_token" }), kindUnavailable, 200, "", 1, "issued_token_type", ""},
		{"200 expires_in text", okBody(func(m map[string]any) { m["expires_in"] = "soon" }), kindUnavailable, 200, "", 1, "expires_in: not a number", ""},
		{"200 expires_in negative", okBody(func(m map[string]any) { m["expires_in"] = -5 }), kindUnavailable, 200, "", 1, "expires_in: -5 is not a positive", ""},
		{"200 expires_in zero", okBody(func(m map[string]any) { m["expires_in"] = 0 }), kindUnavailable, 200, "", 1, "not a positive", ""},
		{"200 expires_in bool", okBody(func(m map[string]any) { m["expires_in"] = true }), kindUnavailable, 200, "", 1, "not a number", ""},
		{"201 instead of 200", raw(201, "application/json", `{}`), kindUnavailable, 201, "", 1, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sts := newRTSTS(t, tt.handle)
			env := newRTEnv(t, rtConfig(sts.URL()))
			res, err := env.remote.Exchange(context.Background(), rtRequest("orders:read"))
			if err == nil {
				t.Fatalf("Exchange succeeded: %+v", res)
			}
			if k := kindOf(err); k != tt.kind {
				t.Errorf("error class %d, want %d: %v", k, tt.kind, err)
			}
			var se *exchange.STSError
			if !errors.As(err, &se) {
				t.Fatalf("error does not carry an *STSError: %v", err)
			}
			if se.Status != tt.status || se.Code != tt.code {
				t.Errorf("STSError status %d code %q, want %d %q", se.Status, se.Code, tt.status, tt.code)
			}
			if se.Retryable() != (tt.calls > 1) {
				t.Errorf("Retryable() = %v", se.Retryable())
			}
			if n := len(sts.Calls()); n != tt.calls {
				t.Errorf("%d STS calls, want %d", n, tt.calls)
			}
			if tt.inErr != "" && !strings.Contains(err.Error(), tt.inErr) {
				t.Errorf("error %q does not contain %q", err, tt.inErr)
			}
			if strings.Contains(err.Error(), rtUmbrella) || strings.Contains(err.Error(), huge[:100]) {
				t.Error("the error repeats the subject token or the body")
			}
			var re *exchange.RejectError
			if errors.As(err, &re) && re.Reason != tt.wantReason {
				t.Errorf("reject reason %q, want %q", re.Reason, tt.wantReason)
			}
			if strings.Contains(env.logs.String(), rtUmbrella) {
				t.Error("the logs contain the subject token")
			}
		})
	}
}

func TestRemoteRetriesOnlyTransientFailures(t *testing.T) {
	t.Run("transient then success", func(t *testing.T) {
		sts := newRTSTS(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n < 3 {
				rtJSON(w, http.StatusBadGateway, map[string]string{"error": "bad_gateway"})
				return
			}
			rtOK(60)(w, r, n)
		})
		env := newRTEnv(t, rtConfig(sts.URL()))
		res, err := env.remote.Exchange(context.Background(), rtRequest())
		if err != nil || res.AccessToken != rtIssued {
			t.Fatalf("Exchange = %+v, %v", res, err)
		}
		if got := env.waits.list(); len(got) != 2 || got[0] != defaultRemoteBackoff || got[1] != 2*defaultRemoteBackoff {
			t.Errorf("back-off waits %v, want [50ms 100ms] (exponential)", got)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		sts := newRTSTS(t, func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusServiceUnavailable) })
		env := newRTEnv(t, rtConfig(sts.URL()), func(o *RemoteOptions) { o.MaxAttempts = 4 })
		if _, err := env.remote.Exchange(context.Background(), rtRequest()); kindOf(err) != kindUnavailable {
			t.Fatalf("error %v, want unavailable", err)
		}
		if n := len(sts.Calls()); n != 4 {
			t.Errorf("%d calls, want MaxAttempts = 4", n)
		}
	})
	t.Run("Retry-After within the timeout is honoured", func(t *testing.T) {
		sts := newRTSTS(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				rtJSON(w, http.StatusTooManyRequests, map[string]string{"error": "slow_down"})
				return
			}
			rtOK(60)(w, r, n)
		})
		cfg := rtConfig(sts.URL())
		cfg.Timeout = config.Duration(5 * time.Second)
		env := newRTEnv(t, cfg)
		if _, err := env.remote.Exchange(context.Background(), rtRequest()); err != nil {
			t.Fatal(err)
		}
		if got := env.waits.list(); len(got) != 1 || got[0] != time.Second {
			t.Errorf("waits %v, want [1s]", got)
		}
	})
	t.Run("Retry-After beyond the timeout gives up", func(t *testing.T) {
		sts := newRTSTS(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		env := newRTEnv(t, rtConfig(sts.URL()))
		if _, err := env.remote.Exchange(context.Background(), rtRequest()); kindOf(err) != kindUnavailable {
			t.Fatalf("error %v, want unavailable", err)
		}
		if n := len(sts.Calls()); n != 1 || len(env.waits.list()) != 0 {
			t.Errorf("%d calls and waits %v; want 1 call and no wait", n, env.waits.list())
		}
	})
	t.Run("connection refused is retried", func(t *testing.T) {
		sts := newRTSTS(t, rtOK(60))
		url := sts.URL()
		sts.Close()
		env := newRTEnv(t, rtConfig(url))
		_, err := env.remote.Exchange(context.Background(), rtRequest())
		if kindOf(err) != kindUnavailable {
			t.Fatalf("error %v, want unavailable", err)
		}
		var se *exchange.STSError
		if !errors.As(err, &se) || se.Status != 0 || !se.Retryable() {
			t.Fatalf("STSError %+v, want a retryable one without status", se)
		}
		if len(env.waits.list()) != defaultRemoteMaxAttempts-1 {
			t.Errorf("waits %v: want %d retries", env.waits.list(), defaultRemoteMaxAttempts-1)
		}
	})
}

func TestRemoteSlowSTSTimesOut(t *testing.T) {
	release := make(chan struct{})
	sts := newRTSTS(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	cfg := rtConfig(sts.URL())
	cfg.Timeout = config.Duration(200 * time.Millisecond)
	env := newRTEnv(t, cfg)
	start := time.Now()
	_, err := env.remote.Exchange(context.Background(), rtRequest())
	elapsed := time.Since(start)
	if kindOf(err) != kindUnavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want unavailable wrapping a deadline", err)
	}
	if elapsed > 2*time.Second {
		t.Errorf("took %s with a 200ms timeout", elapsed)
	}
	if n := len(sts.Calls()); n != 1 {
		t.Errorf("%d calls: no retry fits in a timeout that one attempt used up", n)
	}
}

func TestRemoteExpiredUmbrellaNeverAsks(t *testing.T) {
	sts := newRTSTS(t, rtOK(60))
	env := newRTEnv(t, rtConfig(sts.URL()))
	_, err := env.remote.Exchange(context.Background(), rtRequestFor(rtUmbrella, rtNow, rtAudience))
	var re *exchange.RejectError
	if !errors.As(err, &re) || re.Reason != exchange.ReasonExpired {
		t.Fatalf("error %v, want an expired rejection", err)
	}
	if _, err := env.remote.Exchange(context.Background(), exchange.Request{Audience: rtAudience}); kindOf(err) != kindRejected {
		t.Fatalf("no subject: %v", err)
	}
	if n := len(sts.Calls()); n != 0 {
		t.Errorf("%d STS calls for tokens that cannot be exchanged", n)
	}
}

func TestRemoteMetrics(t *testing.T) {
	var status atomic.Int32
	sts := newRTSTS(t, func(w http.ResponseWriter, r *http.Request, n int) {
		s := int(status.Load())
		if s == 0 {
			rtOK(60)(w, r, n)
			return
		}
		rtJSON(w, s, map[string]string{"error": map[int]string{400: "invalid_grant", 403: "access_denied", 500: "server_error"}[s]})
	})
	env := newRTEnv(t, rtConfig(sts.URL()))
	for _, s := range []int32{0, 0, 400, 403, 500} {
		status.Store(s)
		_, _ = env.remote.Exchange(context.Background(), rtRequest())
	}
	for result, want := range map[string]float64{"ok": 2, "rejected": 2, "unavailable": 1} {
		if got := testutil.ToFloat64(env.metrics.Exchanges.WithLabelValues(rtAudience, "remote", result)); got != want {
			t.Errorf("exchanges{result=%q} = %v, want %v", result, got, want)
		}
	}
	if n := testutil.CollectAndCount(env.metrics.ExchangeDuration, "tokengate_exchange_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1 (mode=remote)", n)
	}
	if problems, err := testutil.CollectAndLint(env.metrics.Exchanges); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestRemoteFingerprint(t *testing.T) {
	keyPath, _ := rtWriteKey(t)
	otherKey, _ := rtWriteKey(t)
	base := rtConfig("https://sts.example.com/token")
	fp := func(edit func(c *config.Remote)) string {
		c := base
		edit(&c)
		r, err := NewRemote(RemoteOptions{Config: c, TokenTTL: time.Minute, HTTPClient: &http.Client{}})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(r.Fingerprint(), c.ClientSecret) && c.ClientSecret != "" {
			t.Fatalf("fingerprint %q shows the secret", r.Fingerprint())
		}
		return r.Fingerprint()
	}
	same := fp(func(*config.Remote) {})
	if again := fp(func(*config.Remote) {}); again != same {
		t.Fatal("fingerprint is not stable")
	}
	if fp(func(c *config.Remote) { c.Timeout = config.Duration(time.Second) }) != same {
		t.Error("the timeout changed the fingerprint; it does not change tokens")
	}
	jwtKey := func(path string) func(c *config.Remote) {
		return func(c *config.Remote) {
			c.AuthMethod, c.ClientSecret = config.AuthPrivateKeyJWT, ""
			c.PrivateKey = config.SigningKey{File: path, Alg: "ES256"}
		}
	}
	changes := map[string]func(c *config.Remote){
		"endpoint":       func(c *config.Remote) { c.TokenEndpoint = "https://sts2.example.com/token" },
		"issuer":         func(c *config.Remote) { c.TokenEndpoint, c.Issuer = "", "https://sts.example.com" },
		"client":         func(c *config.Remote) { c.ClientID = "other" },
		"secret":         func(c *config.Remote) { c.ClientSecret = "rotated" },
		"auth method":    func(c *config.Remote) { c.AuthMethod = config.AuthClientSecretPost },
		"subject type":   func(c *config.Remote) { c.SubjectTokenType = exchange.TokenTypeJWT },
		"requested type": func(c *config.Remote) { c.RequestedTokenType = exchange.TokenTypeJWT },
		"resource":       func(c *config.Remote) { c.Resource = config.Resource{All: true} },
		"resource list":  func(c *config.Remote) { c.Resource = config.Resource{Audiences: []string{"a"}} },
		"private key":    jwtKey(keyPath),
		"other key":      jwtKey(otherKey),
	}
	seen := map[string]string{same: "base"}
	for name, edit := range changes {
		got := fp(edit)
		if prev, dup := seen[got]; dup {
			t.Errorf("changing %s gives the fingerprint of %s", name, prev)
		}
		seen[got] = name
	}
}

func TestRemoteRedactsEchoedSubjectToken(t *testing.T) {
	sts := newRTSTS(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		rtJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "bad token " + rtUmbrella})
	})
	env := newRTEnv(t, rtConfig(sts.URL()))
	_, err := env.remote.Exchange(context.Background(), rtRequest())
	if err == nil || strings.Contains(err.Error(), rtUmbrella) {
		t.Fatalf("error %v repeats the subject token", err)
	}
	if strings.Contains(env.logs.String(), rtUmbrella) || !strings.Contains(env.logs.String(), "[redacted]") {
		t.Errorf("logs: %s", env.logs.String())
	}
}

func TestRemoteNeverLogsTokens(t *testing.T) {
	sts := newRTSTS(t, rtOK(60))
	env := newRTEnv(t, rtConfig(sts.URL()))
	if _, err := env.remote.Exchange(context.Background(), rtRequest()); err != nil {
		t.Fatal(err)
	}
	sts.setHandle(func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusInternalServerError) })
	_, _ = env.remote.Exchange(context.Background(), rtRequest())
	logs := env.logs.String()
	if logs == "" {
		t.Fatal("nothing logged: the test proves nothing")
	}
	for _, secret := range []string{rtUmbrella, rtIssued, "s3cr3t"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}
}

// TestRemoteFailureLogsAreThrottled: an outage fails every request, but only
// one warning per interval reaches the log above debug.
func TestRemoteFailureLogsAreThrottled(t *testing.T) {
	sts := newRTSTS(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		rtJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
	})
	env := newRTEnv(t, rtConfig(sts.URL()))
	for range 5 {
		_, _ = env.remote.Exchange(context.Background(), rtRequest())
	}
	env.clock.Set(rtNow.Add(remoteFailureLogInterval))
	_, _ = env.remote.Exchange(context.Background(), rtRequest())
	logs := env.logs.String()
	if n := strings.Count(logs, `"level":"ERROR"`); n != 2 {
		t.Errorf("%d error lines for 6 failures over one interval, want 2:\n%s", n, logs)
	}
	if n := strings.Count(logs, `"msg":"token exchange at the sts failed"`); n != 6 {
		t.Errorf("%d failure lines in all, want 6 (the rest at debug)", n)
	}
	if !strings.Contains(logs, `"error":"invalid_client"`) {
		t.Error("the STS's error code is not logged")
	}
}

// BenchmarkRemoteExchange is one exchange against a loopback STS: the cost
// a cache miss adds in remote mode, HTTP round trip included.
func BenchmarkRemoteExchange(b *testing.B) {
	sts := newRTSTS(b, rtOK(60))
	env := newRTEnv(b, rtConfig(sts.URL()))
	req := rtRequest("orders:read")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.remote.Exchange(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
