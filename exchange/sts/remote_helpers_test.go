package sts

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/clocktest"
	"github.com/tokengate/tokengate/internal/logtest"
	"github.com/tokengate/tokengate/internal/oauthtest"
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
func rtRequest(scopes ...string) exchange.Request {
	return rtRequestFor(rtUmbrella, rtNow.Add(time.Hour), rtAudience, scopes...)
}

func rtRequestFor(raw string, exp time.Time, aud string, scopes ...string) exchange.Request {
	tok := exchange.NewToken(raw, sha256.Sum256([]byte(raw)), exchange.Claims{Subject: "user-1", Expiry: exp}, "")
	return exchange.Request{Subject: tok, Audience: aud, Scopes: scopes}
}

// rtCall is one request the fake STS received.
type rtCall = oauthtest.Call

// rtSTS is oauthtest's STS: handle answers each call (n counts from 1) at
// its token endpoint, URL().
type rtSTS struct{ *oauthtest.STS }

func newRTSTS(t testing.TB, handle func(w http.ResponseWriter, r *http.Request, n int)) *rtSTS {
	t.Helper()
	return &rtSTS{oauthtest.NewSTS(t, handle)}
}

func (s *rtSTS) setHandle(h func(w http.ResponseWriter, r *http.Request, n int)) { s.SetHandler(h) }

// URL is the token endpoint.
func (s *rtSTS) URL() string { return s.TokenURL() }

// rtJSON answers status with v as JSON.
func rtJSON(w http.ResponseWriter, status int, v any) { oauthtest.JSON(w, status, v) }

// rtOK is a good token response valid for expiresIn seconds.
func rtOK(expiresIn any) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) {
		rtJSON(w, http.StatusOK, map[string]any{
			"access_token":      rtIssued,
			"issued_token_type": exchange.TokenTypeAccessToken,
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
		SubjectTokenType:   exchange.TokenTypeAccessToken,
		RequestedTokenType: exchange.TokenTypeAccessToken,
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
	clock   *clocktest.Clock
	waits   *rtWaits
	metrics *exchange.Metrics
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
		Metrics:    exchange.NewMetrics(reg),
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
	path := filepath.Join(t.TempDir(), "client.pem")
	k, _ := oauthtest.WriteKey(t, path, "ES256")
	return path, k.(*ecdsa.PrivateKey)
}

func newRTLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// ttTrustDomain is the aud of the Txn-Tokens the tests ask for.
const ttTrustDomain = "trust-domain.example"

func ttOptions() exchange.TxnOptions {
	return exchange.TxnOptions{TrustDomain: ttTrustDomain, WorkloadID: "apigw", TTL: time.Minute, ContextClaims: []string{"tenant", "acr", "absent"}}
}
