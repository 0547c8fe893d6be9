package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

const (
	testToken  = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
	testURL    = "https://api.example.com/orders/1"
	testMethod = "GET"
)

var testNow = time.Unix(1_800_000_000, 0)

// testKey is one EC P-256 key and its thumbprint.
type testKey struct {
	priv *ecdsa.PrivateKey
	jwk  map[string]any // public JWK members
	jkt  string
}

func newTestKey(t testing.TB) *testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &priv.PublicKey}
	b, _ := pub.MarshalJSON()
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	tp, _ := pub.Thumbprint(crypto.SHA256)
	return &testKey{priv: priv, jwk: m, jkt: base64.RawURLEncoding.EncodeToString(tp)}
}

func ath(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// es256 signs header and claims by hand, so tests control every byte.
func (k *testKey) es256(t testing.TB, hdr, claims map[string]any) string {
	t.Helper()
	return k.signInput(t, b64json(hdr)+"."+b64json(claims))
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// signInput signs a JWS signing input with ES256.
func (k *testKey) signInput(t testing.TB, input string) string {
	t.Helper()
	return input + "." + oauthtest.SignES256(t, k.priv, input)
}

func (k *testKey) header() map[string]any {
	return map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": maps.Clone(k.jwk)}
}

func goodClaims() map[string]any {
	return map[string]any{
		"jti": "proof-1", "htm": testMethod, "htu": testURL,
		"iat": testNow.Unix(), "ath": ath(testToken),
	}
}

func newTestVerifier(t testing.TB, nonces *Nonces) *Verifier {
	t.Helper()
	v, err := NewVerifier(Options{MaxAge: time.Minute, Leeway: 5 * time.Second, Nonces: nonces, Clock: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func request(proofs ...string) Request {
	return Request{Proofs: proofs, Method: testMethod, URL: testURL, AccessToken: testToken}
}

func TestVerify(t *testing.T) {
	key, other := newTestKey(t), newTestKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)

	with := func(f func(h, c map[string]any)) string {
		h, c := key.header(), goodClaims()
		f(h, c)
		return key.es256(t, h, c)
	}
	good := with(func(h, c map[string]any) {})

	// joseProof signs with go-jose itself (EmbedJWK), for the other key types.
	joseProof := func(alg jose.SignatureAlgorithm, signingKey any, claims map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signingKey},
			(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(claims)
		o, err := s.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := o.CompactSerialize()
		return out
	}
	thumb := func(pub any) string {
		k := jose.JSONWebKey{Key: pub}
		tp, _ := k.Thumbprint(crypto.SHA256)
		return base64.RawURLEncoding.EncodeToString(tp)
	}
	hs256 := func() string {
		h := map[string]any{"typ": "dpop+jwt", "alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": "c2VjcmV0"}}
		input := b64json(h) + "." + b64json(goodClaims())
		m := hmac.New(sha256.New, []byte("secret"))
		m.Write([]byte(input))
		return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}()
	privJWK := func() map[string]any {
		k := jose.JSONWebKey{Key: key.priv}
		b, _ := k.MarshalJSON()
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}()
	unsigned := b64json(map[string]any{"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}) + "." + b64json(goodClaims()) + "."

	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	trailing := func() string {
		h := key.header()
		input := b64json(h) + "." + base64.RawURLEncoding.EncodeToString(append(must(json.Marshal(goodClaims())), []byte(` {"jti":"x"}`)...))
		return key.signInput(t, input)
	}()
	// Duplicated names: two readers of the same bytes could each take a
	// different one (typ for us, another for go-jose; jti for the replay key).
	dupHeader := func() string {
		hj := must(json.Marshal(key.header()))
		hj = append([]byte(`{"typ":"JWT",`), hj[1:]...)
		return key.signInput(t, base64.RawURLEncoding.EncodeToString(hj)+"."+b64json(goodClaims()))
	}()
	dupClaims := func() string {
		cj := must(json.Marshal(goodClaims()))
		cj = append([]byte(`{"jti":"first",`), cj[1:]...)
		return key.signInput(t, b64json(key.header())+"."+base64.RawURLEncoding.EncodeToString(cj))
	}()

	tests := []struct {
		name   string
		req    Request
		jkt    string // default key.jkt
		want   error  // nil: accepted
		errSub string
	}{
		{name: "valid", req: request(good)},
		{name: "valid RS256 via go-jose", req: request(joseProof(jose.RS256, rsaKey, goodClaims())), jkt: thumb(&rsaKey.PublicKey)},
		{name: "valid PS384 via go-jose", req: request(joseProof(jose.PS384, rsaKey, goodClaims())), jkt: thumb(&rsaKey.PublicKey)},
		{name: "valid EdDSA via go-jose", req: request(joseProof(jose.EdDSA, edPriv, goodClaims())), jkt: thumb(edPub)},
		{name: "no proof", req: request(), want: ErrInvalidProof, errSub: "required"},
		{name: "RSA key of 1024 bits", req: request(joseProof(jose.RS256, smallRSA, goodClaims())), jkt: thumb(&smallRSA.PublicKey), want: ErrInvalidProof, errSub: "2048"},
		{name: "claims followed by more JSON", req: request(trailing), want: ErrInvalidProof, errSub: "one JSON object"},
		{name: "duplicate header name", req: request(dupHeader), want: ErrInvalidProof, errSub: "unique names"},
		{name: "duplicate claim name", req: request(dupClaims), want: ErrInvalidProof, errSub: "unique names"},
		{name: "two DPoP headers", req: request(good, good), want: ErrInvalidProof, errSub: "several"},
		{name: "oversize", req: request(good + strings.Repeat("A", MaxProofBytes)), want: ErrInvalidProof, errSub: "too large"},
		{name: "not a JWS", req: request("abc"), want: ErrInvalidProof, errSub: "compact"},
		{name: "four parts", req: request(good + ".x"), want: ErrInvalidProof, errSub: "compact"},
		{name: "typ JWT", req: request(with(func(h, c map[string]any) { h["typ"] = "JWT" })), want: ErrInvalidProof, errSub: "typ"},
		{name: "typ missing", req: request(with(func(h, c map[string]any) { delete(h, "typ") })), want: ErrInvalidProof, errSub: "typ"},
		{name: "typ case differs", req: request(with(func(h, c map[string]any) { h["typ"] = "DPoP+JWT" })), want: ErrInvalidProof, errSub: "typ"},
		{name: "alg none", req: request(unsigned), want: ErrInvalidProof, errSub: "alg"},
		{name: "alg HS256 with oct jwk", req: request(hs256), want: ErrInvalidProof, errSub: "alg"},
		{name: "alg header lies", req: request(with(func(h, c map[string]any) { h["alg"] = "ES384" })), want: ErrInvalidProof, errSub: "signature"},
		{name: "crit", req: request(with(func(h, c map[string]any) { h["crit"] = []string{"exp"} })), want: ErrInvalidProof, errSub: "critical"},
		{name: "no jwk", req: request(with(func(h, c map[string]any) { delete(h, "jwk") })), want: ErrInvalidProof, errSub: "no jwk"},
		{name: "private jwk", req: request(with(func(h, c map[string]any) { h["jwk"] = privJWK })), want: ErrInvalidProof, errSub: "private"},
		{name: "symmetric jwk", req: request(with(func(h, c map[string]any) { h["jwk"] = map[string]any{"kty": "oct", "k": "c2VjcmV0"} })), want: ErrInvalidProof, errSub: "private or symmetric"},
		{name: "jwk of another kty", req: request(with(func(h, c map[string]any) { h["jwk"] = map[string]any{"kty": "oct"} })), want: ErrInvalidProof, errSub: "asymmetric"},
		{name: "jwk not an object", req: request(with(func(h, c map[string]any) { h["jwk"] = "key" })), want: ErrInvalidProof, errSub: "JSON object"},
		{name: "signed by another key", req: request(with(func(h, c map[string]any) { h["jwk"] = other.jwk })), want: ErrInvalidProof, errSub: "signature"},
		{name: "tampered signature", req: request(good[:len(good)-4] + "AAAA"), want: ErrInvalidProof, errSub: "signature"},
		{name: "jti missing", req: request(with(func(h, c map[string]any) { delete(c, "jti") })), want: ErrInvalidProof, errSub: "jti"},
		{name: "jti empty", req: request(with(func(h, c map[string]any) { c["jti"] = "" })), want: ErrInvalidProof, errSub: "jti"},
		{name: "jti too long", req: request(with(func(h, c map[string]any) { c["jti"] = strings.Repeat("j", MaxJTILength+1) })), want: ErrInvalidProof, errSub: "jti"},
		{name: "jti not a string", req: request(with(func(h, c map[string]any) { c["jti"] = 7 })), want: ErrInvalidProof, errSub: "expected types"},
		{name: "htm mismatch", req: request(with(func(h, c map[string]any) { c["htm"] = "POST" })), want: ErrInvalidProof, errSub: "htm"},
		{name: "htm lowercase", req: request(with(func(h, c map[string]any) { c["htm"] = "get" })), want: ErrInvalidProof, errSub: "htm"},
		{name: "htm missing", req: request(with(func(h, c map[string]any) { delete(c, "htm") })), want: ErrInvalidProof, errSub: "htm"},
		{name: "htu other path", req: request(with(func(h, c map[string]any) { c["htu"] = "https://api.example.com/orders/2" })), want: ErrInvalidProof, errSub: "htu"},
		{name: "htu other host", req: request(with(func(h, c map[string]any) { c["htu"] = "https://evil.example.com/orders/1" })), want: ErrInvalidProof, errSub: "htu"},
		{name: "htu http instead of https", req: request(with(func(h, c map[string]any) { c["htu"] = "http://api.example.com/orders/1" })), want: ErrInvalidProof, errSub: "htu"},
		{name: "htu with query", req: request(with(func(h, c map[string]any) { c["htu"] = testURL + "?a=1" })), want: ErrInvalidProof, errSub: "query"},
		{name: "htu with fragment", req: request(with(func(h, c map[string]any) { c["htu"] = testURL + "#f" })), want: ErrInvalidProof, errSub: "fragment"},
		{name: "htu missing", req: request(with(func(h, c map[string]any) { delete(c, "htu") })), want: ErrInvalidProof, errSub: "htu"},
		{name: "htu relative", req: request(with(func(h, c map[string]any) { c["htu"] = "/orders/1" })), want: ErrInvalidProof, errSub: "htu"},
		{name: "htu normalized: case, default port, percent-encoding", req: request(with(func(h, c map[string]any) {
			c["htu"] = "HTTPS://API.Example.COM:443/%6Frders/1"
		}))},
		{name: "iat too old", req: request(with(func(h, c map[string]any) { c["iat"] = testNow.Add(-66 * time.Second).Unix() })), want: ErrInvalidProof, errSub: "too old"},
		{name: "iat at the old edge", req: request(with(func(h, c map[string]any) { c["iat"] = testNow.Add(-65 * time.Second).Unix() }))},
		{name: "iat too new", req: request(with(func(h, c map[string]any) { c["iat"] = testNow.Add(6 * time.Second).Unix() })), want: ErrInvalidProof, errSub: "future"},
		{name: "iat within leeway", req: request(with(func(h, c map[string]any) { c["iat"] = testNow.Add(5 * time.Second).Unix() }))},
		{name: "iat missing", req: request(with(func(h, c map[string]any) { delete(c, "iat") })), want: ErrInvalidProof, errSub: "iat"},
		{name: "iat a string", req: request(with(func(h, c map[string]any) { c["iat"] = "now" })), want: ErrInvalidProof, errSub: "expected types"},
		{name: "ath missing", req: request(with(func(h, c map[string]any) { delete(c, "ath") })), want: ErrInvalidProof, errSub: "ath"},
		{name: "ath of another token", req: request(with(func(h, c map[string]any) { c["ath"] = ath("other") })), want: ErrInvalidProof, errSub: "ath"},
		{name: "jkt mismatch", req: request(good), jkt: other.jkt, want: ErrInvalidProof, errSub: "bound"},
		{name: "token not bound", req: request(good), jkt: "-", want: ErrInvalidProof, errSub: "bound"},
	}
	v := newTestVerifier(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.JKT = key.jkt
			switch tc.jkt {
			case "":
			case "-":
				req.JKT = ""
			default:
				req.JKT = tc.jkt
			}
			p, err := v.Verify(req)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if p.JKT != req.JKT || p.ReplayKey == "" || p.ReplayTTL <= 0 {
					t.Errorf("proof = %+v", p)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var de *Error
			if !errors.As(err, &de) || !strings.Contains(de.Description, tc.errSub) {
				t.Errorf("err = %v, want a description with %q", err, tc.errSub)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Error("the error holds the access token")
			}
		})
	}
}

func TestVerifyReplayKey(t *testing.T) {
	key := newTestKey(t)
	v := newTestVerifier(t, nil)
	c := goodClaims()
	p1, err := v.Verify(Request{Proofs: []string{key.es256(t, key.header(), c)}, Method: testMethod, URL: testURL, AccessToken: testToken, JKT: key.jkt})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := v.Verify(Request{Proofs: []string{key.es256(t, key.header(), c)}, Method: testMethod, URL: testURL, AccessToken: testToken, JKT: key.jkt})
	if err != nil {
		t.Fatal(err)
	}
	// Two signatures of the same jti (ECDSA is randomized) are the same proof for replay.
	if p1.ReplayKey != p2.ReplayKey {
		t.Error("the same (jkt, jti) gave two replay keys")
	}
	if strings.Contains(p1.ReplayKey, "proof-1") {
		t.Error("the replay key holds the raw jti")
	}
	if want := 65 * time.Second; p1.ReplayTTL != want {
		t.Errorf("ReplayTTL = %v, want %v (iat + max_age + leeway - now)", p1.ReplayTTL, want)
	}
}

func TestVerifyNonce(t *testing.T) {
	key := newTestKey(t)
	now := testNow
	clock := func() time.Time { return now }
	nonces, err := NewNonces(make([]byte, 32), 5*time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	otherNonces, _ := NewNonces([]byte(strings.Repeat("x", 32)), 5*time.Minute, clock)
	v, err := NewVerifier(Options{MaxAge: time.Minute, Leeway: 5 * time.Second, Nonces: nonces, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	current := nonces.Current()
	oldNow := now
	now = now.Add(-10 * time.Minute)
	stale := nonces.Current()
	now = oldNow

	tests := []struct {
		name  string
		nonce any // nil: absent
		want  error
	}{
		{"missing", nil, ErrUseNonce},
		{"stale", stale, ErrUseNonce},
		{"another server's", otherNonces.Current(), ErrUseNonce},
		{"garbage", "abc", ErrUseNonce},
		{"valid", current, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := goodClaims()
			if tc.nonce != nil {
				c["nonce"] = tc.nonce
			}
			req := request(key.es256(t, key.header(), c))
			req.JKT = key.jkt
			_, err := v.Verify(req)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNoncesWindows(t *testing.T) {
	now := testNow
	n, err := NewNonces(make([]byte, 32), time.Minute, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	cur := n.Current()
	now = now.Add(time.Minute) // next window: the previous one is still accepted
	if !n.Valid(cur) {
		t.Error("a nonce of the previous window is refused")
	}
	now = now.Add(time.Minute)
	if n.Valid(cur) {
		t.Error("a nonce two windows old is accepted")
	}
	if _, err := NewNonces(make([]byte, 8), time.Minute, nil); err == nil {
		t.Error("a short secret is accepted")
	}
}

func TestNewVerifierRefusesSymmetric(t *testing.T) {
	for _, algs := range [][]string{{"HS256"}, {"none"}, {}} {
		if _, err := NewVerifier(Options{Algorithms: algs, MaxAge: time.Minute}); err == nil {
			t.Errorf("algorithms %v accepted", algs)
		}
	}
}

func TestNormalizeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://Example.COM/a", "https://example.com/a"},
		{"https://example.com:443/a", "https://example.com/a"},
		{"http://example.com:80/a", "http://example.com/a"},
		{"https://example.com:8443/a", "https://example.com:8443/a"},
		{"https://example.com", "https://example.com/"},
		{"https://example.com/%7euser/%2f", "https://example.com/~user/%2F"},
		{"ftp://example.com/", ""},
		{"https://example.com/?q", ""},
		{"https://u@example.com/", ""},
	}
	for _, tc := range tests {
		got, err := NormalizeURL(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("NormalizeURL(%q) = %q, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	key := newTestKey(b)
	v := newTestVerifier(b, nil)
	req := request(key.es256(b, key.header(), goodClaims()))
	req.JKT = key.jkt
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(req); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	key := newTestKey(f)
	f.Add(key.es256(f, key.header(), goodClaims()))
	f.Add("a.b.c")
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2In0.e30.")
	f.Add("")
	v := newTestVerifier(f, nil)
	f.Fuzz(func(t *testing.T, proof string) {
		req := request(proof)
		req.JKT = key.jkt
		p, err := v.Verify(req)
		if err == nil && p.JKT != key.jkt {
			t.Fatalf("accepted a proof for another key")
		}
		if err != nil && !errors.Is(err, ErrInvalidProof) && !errors.Is(err, ErrUseNonce) {
			t.Fatalf("error without a sentinel: %v", err)
		}
	})
}
