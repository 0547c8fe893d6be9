package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/clocktest"
	"github.com/tokengate/tokengate/internal/logtest"
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

// vtKey is a signing key with its JWS algorithm and kid.
type vtKey struct {
	alg  jose.SignatureAlgorithm
	kid  string
	priv crypto.Signer
}

// vtRSA caches RSA keys: generating them dominates test time under -race.
var vtRSA = sync.OnceValue(func() [2]*rsa.PrivateKey {
	var ks [2]*rsa.PrivateKey
	for i := range ks {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ks[i] = k
	}
	return ks
})

func vtNewKey(t testing.TB, alg jose.SignatureAlgorithm, kid string) *vtKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case jose.RS256, jose.PS256:
		priv = vtRSA()[0]
	default:
		t.Fatalf("vtNewKey: unsupported alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &vtKey{alg: alg, kid: kid, priv: priv}
}

// jwk is the public JWK of k, with kid and (optionally) alg.
func (k *vtKey) jwk(withAlg bool) jose.JSONWebKey {
	j := jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Use: "sig"}
	if withAlg {
		j.Algorithm = string(k.alg)
	}
	return j
}

// vtJWKS serializes the public keys.
func vtJWKS(t testing.TB, keys ...*vtKey) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk(true))
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vtSign mints a JWT with go-jose. headers are extra protected headers.
func vtSign(t testing.TB, k *vtKey, claims map[string]any, headers map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for name, v := range headers {
		opts = opts.WithHeader(jose.HeaderKey(name), v)
	}
	var key any = jose.JSONWebKey{Key: k.priv, KeyID: k.kid}
	if k.kid == "" {
		key = k.priv
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// vtSignRaw signs arbitrary header and payload bytes (for tokens go-jose
// would refuse to build: duplicate names, odd types). ES256 keys only.
func vtSignRaw(t testing.TB, k *vtKey, header, payload string) string {
	t.Helper()
	input := vtB64(header) + "." + vtB64(payload)
	digest := sha256.Sum256([]byte(input))
	ec, ok := k.priv.(*ecdsa.PrivateKey)
	if !ok || k.alg != jose.ES256 {
		t.Fatalf("vtSignRaw needs an ES256 key")
	}
	r, s, err := ecdsa.Sign(rand.Reader, ec, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
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

// vtIdP is a mutable identity provider: JWKS and metadata whose keys and
// failure mode can change while a test runs, counting every request.
type vtIdP struct {
	srv *httptest.Server

	mu        sync.Mutex
	jwks      []byte
	mode      string // "", "fail", "garbage", "huge", "hang"
	metaIss   string // issuer named in metadata; "" = the server URL (+ path)
	metaJWKS  string // jwks_uri named in metadata; "" = this server's
	release   chan struct{}
	arrived   chan struct{}
	oidcPaths map[string]bool // metadata paths served

	jwksHits atomic.Int64
	metaHits atomic.Int64
}

func vtNewIdP(t testing.TB, keys ...*vtKey) *vtIdP {
	t.Helper()
	idp := &vtIdP{release: make(chan struct{}), arrived: make(chan struct{}, 1000), oidcPaths: map[string]bool{}}
	idp.jwks = vtJWKS(t, keys...)
	idp.srv = httptest.NewServer(http.HandlerFunc(idp.serve))
	t.Cleanup(func() {
		idp.unblock()
		idp.srv.Close()
	})
	return idp
}

func (p *vtIdP) URL() string { return p.srv.URL }

func (p *vtIdP) setKeys(t testing.TB, keys ...*vtKey) {
	b := vtJWKS(t, keys...)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jwks = b
}

func (p *vtIdP) setRaw(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jwks = b
}

func (p *vtIdP) setMode(m string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
}

// serveMeta publishes metadata at path for an issuer (server URL + issPath).
func (p *vtIdP) serveMeta(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.oidcPaths[path] = true
}

func (p *vtIdP) setMetaIssuer(iss string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.metaIss = iss
}

func (p *vtIdP) setMetaJWKSURI(u string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.metaJWKS = u
}

// unblock lets hanging requests finish (once).
func (p *vtIdP) unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.release:
	default:
		close(p.release)
	}
}

func (p *vtIdP) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	mode, jwks, metaIss, metaJWKS, release := p.mode, p.jwks, p.metaIss, p.metaJWKS, p.release
	isMeta := p.oidcPaths[r.URL.Path]
	p.mu.Unlock()
	switch {
	case isMeta:
		p.metaHits.Add(1)
		if metaIss == "" {
			issPath := strings.TrimSuffix(r.URL.Path, "/.well-known/openid-configuration")
			if after, ok := strings.CutPrefix(r.URL.Path, "/.well-known/oauth-authorization-server"); ok {
				issPath = after
			}
			metaIss = p.srv.URL + issPath
		}
		w.Header().Set("Content-Type", "application/json")
		if metaJWKS == "" {
			metaJWKS = p.srv.URL + "/jwks.json"
		}
		fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":%q}`, metaIss, metaJWKS)
		return
	case r.URL.Path == "/jwks.json":
		p.jwksHits.Add(1)
	default:
		http.NotFound(w, r)
		return
	}
	if mode == "hang" || mode == "gate" {
		select {
		case p.arrived <- struct{}{}:
		default:
		}
	}
	switch mode {
	case "fail":
		http.Error(w, "down", http.StatusInternalServerError)
	case "garbage":
		w.Write([]byte("<html>not json"))
	case "huge":
		w.Write([]byte(`{"keys":[],"pad":"`))
		w.Write(bytes.Repeat([]byte("a"), 2<<20))
		w.Write([]byte(`"}`))
	case "hang", "gate":
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		if mode == "gate" {
			w.Write(jwks)
		}
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}
}

// vtEnv is a verifier wired to one vtIdP and a fake clock.
type vtEnv struct {
	idp     *vtIdP
	clock   *vtClock
	key     *vtKey // ES256, kid "k1", published
	iss     config.Issuer
	v       *Verifier
	metrics *exchange.Metrics
	logs    *logtest.Buffer
	sigs    atomic.Int64 // signature checks performed
}

// vtNewEnv starts an IdP publishing an ES256 key "k1" (plus extra keys) and
// a verifier for it; mutate adjusts the issuer configuration first.
func vtNewEnv(t testing.TB, mutate func(*config.Issuer), extra ...*vtKey) *vtEnv {
	t.Helper()
	return vtNewEnvOpts(t, mutate, VerifierOptions{}, extra...)
}

func vtNewEnvOpts(t testing.TB, mutate func(*config.Issuer), opts VerifierOptions, extra ...*vtKey) *vtEnv {
	t.Helper()
	e := &vtEnv{clock: vtNewClock(), key: vtNewKey(t, jose.ES256, "k1"), logs: &logtest.Buffer{}}
	e.idp = vtNewIdP(t, append([]*vtKey{e.key}, extra...)...)
	e.iss = config.Issuer{
		Issuer:             e.idp.URL(),
		JWKSURI:            e.idp.URL() + "/jwks.json",
		Leeway:             config.Duration(30 * time.Second),
		MinRefreshInterval: config.Duration(10 * time.Second),
		FetchTimeout:       config.Duration(2 * time.Second),
	}
	if mutate != nil {
		mutate(&e.iss)
	}
	e.metrics = exchange.NewMetrics(prometheus.NewRegistry())
	opts.HTTPClient = e.idp.srv.Client()
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
	return vtSign(t, e.key, c, nil)
}

func (e *vtEnv) refreshes(result string) float64 {
	return testutil.ToFloat64(e.metrics.JWKSRefreshes.WithLabelValues(e.iss.Issuer, result))
}

// vtWith returns claims with name set to v.
func vtWith(claims map[string]any, name string, v any) map[string]any {
	claims[name] = v
	return claims
}
