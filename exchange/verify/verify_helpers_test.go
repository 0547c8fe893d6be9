package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/clocktest"
	"github.com/tokengate/tokengate/internal/logtest"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// Audiences used across the verifier tests.
const (
	vtAudOrders   = "https://orders.example.com"
	vtAudBilling  = "https://billing.example.com"
	vtAudUmbrella = "https://api.example.com"
)

// vtClock is the shared test clock.
type vtClock = clocktest.Clock

func vtNewClock() *vtClock { return clocktest.New() }

// vtRSAKey is the binary's RSA fixture as an alg key named kid: generating
// RSA keys dominates test time under -race.
func vtRSAKey(t testing.TB, alg, kid string) oauthtest.Key {
	t.Helper()
	return oauthtest.Key{Alg: alg, KID: kid, Signer: oauthtest.Keys(t).RSA2048}
}

// vtSignRaw signs arbitrary header and payload bytes (for tokens go-jose
// would refuse to build: duplicate names, odd types). ES256 keys only.
func vtSignRaw(t testing.TB, k oauthtest.Key, header, payload string) string {
	t.Helper()
	input := vtB64(header) + "." + vtB64(payload)
	ec, ok := k.Signer.(*ecdsa.PrivateKey)
	if !ok || k.Alg != "ES256" {
		t.Fatalf("vtSignRaw needs an ES256 key")
	}
	return input + "." + oauthtest.SignES256(t, ec, input)
}

// vtHS256 is the classic key-confusion attack: an HMAC keyed with the
// issuer's public key bytes.
func vtHS256(t testing.TB, pub crypto.PublicKey, kid, payload string) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	input := vtB64(fmt.Sprintf(`{"alg":"HS256","kid":%q}`, kid)) + "." + vtB64(payload)
	mac := hmac.New(sha256.New, pemKey)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func vtB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func vtJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// vtEnv is a verifier wired to one oauthtest IdP and a fake clock.
type vtEnv struct {
	idp     *oauthtest.IdP
	clock   *vtClock
	key     oauthtest.Key // ES256, kid "k1", published
	iss     config.Issuer
	v       *Verifier
	metrics *exchange.Metrics
	logs    *logtest.Buffer
	sigs    atomic.Int64 // signature checks performed
}

// vtNewEnv starts an IdP publishing an ES256 key "k1" (plus extra keys) and
// a verifier for it; mutate adjusts the issuer configuration first.
func vtNewEnv(t testing.TB, mutate func(*config.Issuer), extra ...oauthtest.Key) *vtEnv {
	t.Helper()
	return vtNewEnvOpts(t, mutate, VerifierOptions{}, extra...)
}

func vtNewEnvOpts(t testing.TB, mutate func(*config.Issuer), opts VerifierOptions, extra ...oauthtest.Key) *vtEnv {
	t.Helper()
	e := &vtEnv{clock: vtNewClock(), key: oauthtest.NewSigningKey(t, "ES256", "k1"), logs: &logtest.Buffer{}}
	e.idp = oauthtest.NewIdP(t)
	e.idp.SetKeys(append([]oauthtest.Key{e.key}, extra...)...)
	e.iss = config.Issuer{
		Issuer:             e.idp.URL(),
		JWKSURI:            e.idp.JWKSURL(),
		Leeway:             config.Duration(30 * time.Second),
		MinRefreshInterval: config.Duration(10 * time.Second),
		FetchTimeout:       config.Duration(2 * time.Second),
	}
	if mutate != nil {
		mutate(&e.iss)
	}
	e.metrics = exchange.NewMetrics(prometheus.NewRegistry())
	opts.HTTPClient = e.idp.Client()
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Metrics = e.metrics
	opts.Clock = e.clock.Now
	v, err := NewVerifier([]config.Issuer{e.iss}, opts)
	if err != nil {
		t.Fatal(err)
	}
	v.onSignatureCheck = func() { e.sigs.Add(1) }
	e.v = v
	return e
}

// claims are valid claims for e's issuer: aud lists orders and billing.
func (e *vtEnv) claims() map[string]any {
	now := e.clock.Now().Unix()
	return map[string]any{
		"iss":       e.iss.Issuer,
		"sub":       "user-1",
		"aud":       []string{vtAudOrders, vtAudBilling},
		"exp":       now + 3600,
		"iat":       now,
		"nbf":       now,
		"client_id": "app",
		"scope":     "orders:read billing:read",
	}
}

// token signs claims (after edit) with e's key.
func (e *vtEnv) token(t testing.TB, edit func(map[string]any)) string {
	t.Helper()
	c := e.claims()
	if edit != nil {
		edit(c)
	}
	return e.key.Sign(t, nil, c)
}

func (e *vtEnv) refreshes(result string) float64 {
	return testutil.ToFloat64(e.metrics.JWKSRefreshes.WithLabelValues(e.iss.Issuer, result))
}

// vtWith returns claims with name set to v.
func vtWith(claims map[string]any, name string, v any) map[string]any {
	claims[name] = v
	return claims
}
