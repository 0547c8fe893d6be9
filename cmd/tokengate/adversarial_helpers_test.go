package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"hash"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// b64 is the JWS segment encoding (RFC 7515: base64url, no padding).
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// signer produces the signature segment for a JWS signing input.
type signer func(t testing.TB, input string) string

// craft builds a compact JWS from raw header and payload JSON (so duplicate
// keys, odd types and invalid JSON can be expressed) and a signer; a nil
// signer leaves the signature empty.
func craft(t testing.TB, header, payload string, sign signer) string {
	t.Helper()
	input := b64(header) + "." + b64(payload)
	if sign == nil {
		return input + "."
	}
	return input + "." + sign(t, input)
}

// signES256 signs with an ECDSA P-256 key (RFC 7518 section 3.4: r || s).
func signES256(key *ecdsa.PrivateKey) signer {
	return func(t testing.TB, input string) string {
		t.Helper()
		return oauthtest.SignES256(t, key, input)
	}
}

// signRS256 signs with RSA PKCS#1 v1.5 and SHA-256 (RS256), or PSS (PS256).
func signRSA(key *rsa.PrivateKey, pss bool) signer {
	return func(t testing.TB, input string) string {
		t.Helper()
		sum := sha256.Sum256([]byte(input))
		var sig []byte
		var err error
		if pss {
			sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, sum[:], nil)
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		}
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(sig)
	}
}

// signHMAC signs with HMAC-SHA-256 or -512 under secret: the algorithm
// confusion attack uses a public key as the secret.
func signHMAC(secret []byte, sha512Hash bool) signer {
	return func(t testing.TB, input string) string {
		h := func() hash.Hash { return sha256.New() }
		if sha512Hash {
			h = sha512.New
		}
		m := hmac.New(h, secret)
		m.Write([]byte(input))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
}

// fixed returns a constant signature segment.
func fixed(sig string) signer { return func(testing.TB, string) string { return sig } }

// addRSAKey publishes an RS256 key after the IdP's signing keys (the ES256
// key keeps signing mint's tokens) and returns it.
func (i *e2eIdP) addRSAKey(t testing.TB, kid string) *rsa.PrivateKey {
	t.Helper()
	return i.PublishKey(t, "RS256", kid).(*rsa.PrivateKey)
}

// ecKey returns the IdP's ES256 key with that kid.
func (i *e2eIdP) ecKey(t testing.TB, kid string) *ecdsa.PrivateKey {
	t.Helper()
	ec, ok := i.PrivateKey(kid).(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("the IdP has no ES256 key %q", kid)
	}
	return ec
}

// publicJWKS is the JWKS document the IdP serves.
func (i *e2eIdP) publicJWKS(t testing.TB) []byte { return i.JWKS(t) }

// attacker is a server an attacker controls: it serves its own JWKS and
// certificate for jku / x5u and counts every request, which must stay zero.
type attacker struct {
	srv  *httptest.Server
	key  *ecdsa.PrivateKey
	cert []byte // a self-signed certificate for key (DER)
	jwk  string // key's public JWK (JSON)
	hits atomic.Int32
}

func newAttacker(t testing.TB) *attacker {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := json.Marshal(jose.JSONWebKey{Key: &key.PublicKey, KeyID: "attacker", Algorithm: "ES256", Use: "sig"})
	if err != nil {
		t.Fatal(err)
	}
	a := &attacker{key: key, cert: cert, jwk: string(jwk)}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"keys":[` + a.jwk + `]}`))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

// rsaPublicPEM and rsaPublicDER are the forms a confused verifier might use
// as an HMAC secret.
func rsaPublicDER(t testing.TB, k *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func rsaPublicPEM(t testing.TB, k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPublicDER(t, k)})
}

// claimsJSON is a valid claim set for the orders route, with overrides
// (a nil value deletes the claim).
func claimsJSON(t testing.TB, iss string, over map[string]any) string {
	t.Helper()
	c := map[string]any{
		"iss": iss, "sub": "mallory", "aud": audOrders, "scope": "orders:read",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// flipBit flips one bit of the signature.
func flipBit(t testing.TB, tok string) string {
	t.Helper()
	i := strings.LastIndex(tok, ".")
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 0x01
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// assertNoTokenInMetrics scrapes the admin /metrics and fails if the token
// (or its signature, which identifies it) appears in any name, label or value.
func assertNoTokenInMetrics(t *testing.T, token string, g *e2eGateway) {
	t.Helper()
	_, metrics := get(t, g.srv.AdminURL()+"/metrics")
	if !strings.Contains(metrics, "tokengate_") {
		t.Fatalf("/metrics has no tokengate_ series: the scrape proves nothing")
	}
	sig := token[strings.LastIndex(token, ".")+1:]
	if strings.Contains(metrics, token) || (len(sig) >= 16 && strings.Contains(metrics, sig)) {
		t.Errorf("the token appears in /metrics")
	}
}
