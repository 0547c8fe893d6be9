package verify

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/logtest"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// itOpaque is an opaque umbrella token as an authorization server issues it.
const itOpaque = "opaque-token-7QxJ2vN9kLm4pR8sT1uW3yZ5aC6dE0fG"

// itRequest is what the authorization server received.
type itRequest struct {
	form        url.Values
	header      http.Header
	user, pass  string
	basic       bool
	contentType string
}

// itAS is an authorization server: an oauthtest IdP as the issuer (its
// metadata names the introspection endpoint, its JWKS publishes key, which
// signs RFC 9701 responses) and an oauthtest introspection endpoint whose
// answer can change while a test runs.
type itAS struct {
	idp   *oauthtest.IdP
	intro *oauthtest.Introspection
	key   oauthtest.Key // ES256 "as1"

	mu      sync.Mutex
	handle  func(w http.ResponseWriter, r *http.Request)
	arrived chan struct{}
	calls   atomic.Int64
}

func itNewAS(t testing.TB) *itAS {
	t.Helper()
	as := &itAS{key: oauthtest.NewSigningKey(t, "ES256", "as1"), arrived: make(chan struct{}, 100)}
	as.idp = oauthtest.NewIdP(t)
	as.idp.SetKeys(as.key) // only as1 is published
	as.intro = oauthtest.NewIntrospection(t, as.serve)
	as.idp.SetIntrospectionEndpoint(as.intro.Endpoint())
	return as
}

// URL is the issuer.
func (as *itAS) URL() string      { return as.idp.URL() }
func (as *itAS) endpoint() string { return as.intro.Endpoint() }

// client is an HTTP client for the issuer and the endpoint.
func (as *itAS) client() *http.Client { return as.intro.Client() }

// withoutMetaEndpoint leaves introspection_endpoint out of the metadata.
func (as *itAS) withoutMetaEndpoint() { as.idp.SetIntrospectionEndpoint("") }

func (as *itAS) setHandle(h func(w http.ResponseWriter, r *http.Request)) {
	as.mu.Lock()
	defer as.mu.Unlock()
	as.handle = h
}

// respond makes the endpoint answer 200 with members as JSON.
func (as *itAS) respond(members map[string]any) {
	as.setHandle(func(w http.ResponseWriter, _ *http.Request) { itWriteJSON(w, members) })
}

func itWriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// requests are what the endpoint received.
func (as *itAS) requests() []itRequest {
	var out []itRequest
	for _, c := range as.intro.Calls() {
		user, pass, basic := (&http.Request{Header: c.Header}).BasicAuth()
		out = append(out, itRequest{form: c.Form, header: c.Header, user: user, pass: pass,
			basic: basic, contentType: c.Header.Get("Content-Type")})
	}
	return out
}

func (as *itAS) serve(w http.ResponseWriter, r *http.Request, _ int) {
	as.calls.Add(1)
	as.mu.Lock()
	h := as.handle
	as.mu.Unlock()
	select {
	case as.arrived <- struct{}{}:
	default:
	}
	if h == nil {
		http.Error(w, "no handler", http.StatusInternalServerError)
		return
	}
	h(w, r)
}

// itEnv is a verifier whose only issuer introspects at an itAS.
type itEnv struct {
	as      *itAS
	clock   *vtClock
	iss     config.Issuer
	v       *Verifier
	metrics *exchange.Metrics
	logs    *logtest.Buffer
}

// itNewEnv builds an introspection-only issuer (the AS's URL) with the
// defaults config applies; mutate adjusts it first.
func itNewEnv(t testing.TB, mutate func(*config.Issuer)) *itEnv {
	t.Helper()
	e := &itEnv{as: itNewAS(t), clock: vtNewClock(), logs: &logtest.Buffer{}}
	e.iss = config.Issuer{
		Issuer:                e.as.URL(),
		Leeway:                config.Duration(30 * time.Second),
		MinRefreshInterval:    config.Duration(10 * time.Second),
		FetchTimeout:          config.Duration(2 * time.Second),
		IntrospectionEndpoint: e.as.endpoint(),
		Introspection: &config.Introspection{
			ClientID:         "tokengate",
			ClientSecret:     "s3cret:with/odd chars",
			AuthMethod:       config.AuthClientSecretBasic,
			Timeout:          config.Duration(2 * time.Second),
			CacheMaxEntries:  100,
			MaxCacheTTL:      config.Duration(5 * time.Minute),
			NegativeCacheTTL: config.Duration(10 * time.Second),
		},
	}
	if mutate != nil {
		mutate(&e.iss)
	}
	e.metrics = exchange.NewMetrics(prometheus.NewRegistry())
	v, err := NewVerifier([]config.Issuer{e.iss}, VerifierOptions{
		HTTPClient: e.as.client(),
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:    e.metrics,
		Clock:      e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.v = v
	return e
}

// members are an active RFC 7662 response for orders and billing.
func (e *itEnv) members() map[string]any {
	now := e.clock.Now().Unix()
	return map[string]any{
		"active":     true,
		"sub":        "user-1",
		"aud":        []string{vtAudOrders, vtAudBilling},
		"exp":        now + 3600,
		"iat":        now,
		"client_id":  "app",
		"scope":      "orders:read billing:read",
		"token_type": "Bearer",
	}
}

func (e *itEnv) verify(t testing.TB, raw, audience string) (*exchange.Token, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := e.v.Verify(ctx, raw, audience)
	if err != nil && strings.Contains(err.Error(), raw) {
		t.Errorf("error repeats the token: %v", err)
	}
	if strings.Contains(e.logs.String(), raw) {
		t.Errorf("log repeats the token")
	}
	return tok, err
}

func (e *itEnv) calls(result string) float64 {
	return testutil.ToFloat64(e.metrics.Introspection.Calls.WithLabelValues(result))
}

func (e *itEnv) hits(result string) float64 {
	return testutil.ToFloat64(e.metrics.Introspection.CacheHits.WithLabelValues(result))
}

// itSignResponse makes an RFC 9701 response: claims (iss, aud, iat and
// token_introspection) signed by k with typ.
func itSignResponse(t testing.TB, k oauthtest.Key, typ string, claims map[string]any) string {
	t.Helper()
	headers := map[string]any{}
	if typ != "" {
		headers["typ"] = typ
	}
	return k.Sign(t, headers, claims)
}

// itJWTHandler answers with body as contentType.
func itJWTHandler(contentType, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = io.WriteString(w, body)
	}
}

// itReason is the rejection reason of err, or "unavailable" for an
// introspection outage, "" for none.
func itReason(err error) string {
	if err == nil {
		return ""
	}
	invalid, outage := errors.Is(err, exchange.ErrInvalidToken), errors.Is(err, exchange.ErrIntrospectionUnavailable)
	var re *exchange.RejectError
	switch {
	case invalid && outage:
		return fmt.Sprintf("both a rejection and an outage: %v", err)
	case errors.As(err, &re):
		return re.Reason
	case outage:
		return "unavailable"
	}
	return fmt.Sprintf("other: %v", err)
}

// itWriteKey writes a new ES256 client key as PEM and returns its path and key.
func itWriteKey(t testing.TB) (string, *ecdsa.PrivateKey) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "client.pem")
	k, _ := oauthtest.WriteKey(t, path, "ES256")
	return path, k.(*ecdsa.PrivateKey)
}
