package exchange

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/clocktest"
	"github.com/tokengate/tokengate/internal/logtest"
)

// rtNow is the fake time of remote tests.
var rtNow = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

const (
	rtUmbrella = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1bWJyZWxsYS1zdWJqZWN0In0.umbrella-signature-part"
	rtIssued   = "issued-token-for-the-api-0123456789"
	rtAudience = "https://orders.example.com"
	rtTTL      = 5 * time.Minute
)

// rtRequest is an exchange request for rtUmbrella (exp in an hour).
func rtRequest(scopes ...string) Request {
	return rtRequestFor(rtUmbrella, rtNow.Add(time.Hour), rtAudience, scopes...)
}

func rtRequestFor(raw string, exp time.Time, aud string, scopes ...string) Request {
	tok := NewToken(raw, sha256.Sum256([]byte(raw)), Claims{Subject: "user-1", Expiry: exp}, "")
	return Request{Subject: tok, Audience: aud, Scopes: scopes}
}

// rtCall is one request the fake STS received.
type rtCall struct {
	Header http.Header
	Form   url.Values
	Path   string
}

// rtSTS is a fake RFC 8693 STS: handle answers each call (n counts from 1).
type rtSTS struct {
	srv *httptest.Server

	mu     sync.Mutex
	calls  []rtCall
	handle func(w http.ResponseWriter, r *http.Request, n int)
}

func newRTSTS(t testing.TB, handle func(w http.ResponseWriter, r *http.Request, n int)) *rtSTS {
	t.Helper()
	s := &rtSTS{handle: handle}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		s.mu.Lock()
		s.calls = append(s.calls, rtCall{Header: r.Header.Clone(), Form: form, Path: r.URL.Path})
		n, h := len(s.calls), s.handle
		s.mu.Unlock()
		h(w, r, n)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *rtSTS) setHandle(h func(w http.ResponseWriter, r *http.Request, n int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handle = h
}

func (s *rtSTS) URL() string { return s.srv.URL + "/oauth2/token" }

func (s *rtSTS) Calls() []rtCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rtCall(nil), s.calls...)
}

// rtJSON answers status with v as JSON.
func rtJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// rtOK is a good token response valid for expiresIn seconds.
func rtOK(expiresIn any) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		rtJSON(w, http.StatusOK, map[string]any{
			"access_token":      rtIssued,
			"issued_token_type": TokenTypeAccessToken,
			"token_type":        "Bearer",
			"expires_in":        expiresIn,
			"scope":             "orders:read",
		})
	}
}

// rtConfig is a valid exchange.remote for endpoint with client_secret_basic.
func rtConfig(endpoint string) config.Remote {
	return config.Remote{
		TokenEndpoint:      endpoint,
		ClientID:           "tokengate",
		ClientSecret:       "s3cr3t",
		AuthMethod:         config.AuthClientSecretBasic,
		SubjectTokenType:   TokenTypeAccessToken,
		RequestedTokenType: TokenTypeAccessToken,
		Timeout:            config.Duration(2 * time.Second),
	}
}

// rtWaits records the back-off waits of a Remote instead of sleeping.
type rtWaits struct {
	mu sync.Mutex
	ds []time.Duration
}

func (w *rtWaits) wait(_ context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ds = append(w.ds, d)
	return nil
}

func (w *rtWaits) list() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.ds...)
}

// rtEnv is a Remote wired to a fake clock, metrics and recorded waits.
type rtEnv struct {
	remote  *Remote
	clock   *ctClock
	waits   *rtWaits
	metrics *Metrics
	reg     *prometheus.Registry
	logs    *logtest.Buffer
}

func newRTEnv(t testing.TB, cfg config.Remote, mutate ...func(*RemoteOptions)) *rtEnv {
	t.Helper()
	clock := clocktest.At(rtNow)
	reg := prometheus.NewRegistry()
	logs := &logtest.Buffer{}
	opts := RemoteOptions{
		Config:     cfg,
		TokenTTL:   rtTTL,
		HTTPClient: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		Clock:      clock.Now,
		Metrics:    NewMetrics(reg),
		Logger:     newRTLogger(logs),
	}
	for _, m := range mutate {
		m(&opts)
	}
	r, err := NewRemote(opts)
	if err != nil {
		t.Fatalf("NewRemote: %v", err)
	}
	waits := &rtWaits{}
	r.wait = waits.wait
	r.jitter = func(d time.Duration) time.Duration { return d } // the full back-off: exact and checkable
	return &rtEnv{remote: r, clock: clock, waits: waits, metrics: opts.Metrics, reg: reg, logs: logs}
}

// rtWriteKey writes a new ES256 key as PEM and returns its path and key.
func rtWriteKey(t testing.TB) (string, *ecdsa.PrivateKey) {
	t.Helper()
	pemBytes, err := GenerateKeyPEM("ES256", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ParsePrivateKeyPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Fatalf("GenerateKeyPEM(ES256) made a %T", signer)
	}
	return path, key
}

func newRTLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
