package oauthtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// NewKey generates a private key for alg: ES256, ES384, ES512 (P-256,
// P-384, P-521), RS256 and PS256 (RSA 2048), EdDSA (Ed25519).
func NewKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "RS256", "PS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("oauthtest: no key for alg %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Key is a private signing key with the JWS alg and kid its tokens name:
// what an IdP publishes (SetKeys) and what a test signs with by hand (Sign),
// the wrong key for a kid or the wrong alg for a key included.
type Key struct {
	Alg    string // JWS alg: ES256, RS256, PS256, EdDSA, ...
	KID    string // "" leaves kid out of the JWS header
	Signer crypto.Signer
}

// NewSigningKey generates an alg key (NewKey) named kid.
func NewSigningKey(t testing.TB, alg, kid string) Key {
	t.Helper()
	return Key{Alg: alg, KID: kid, Signer: NewKey(t, alg)}
}

// JWK is k's public JWK as an IdP publishes it: kid, alg and use "sig".
func (k Key) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Signer.Public(), KeyID: k.KID, Algorithm: k.Alg, Use: "sig"}
}

// Sign makes a compact JWS of exactly claims, with headers as extra
// protected headers: no typ, iat or exp unless given (IdP.Mint adds them).
func (k Key) Sign(t testing.TB, headers, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for name, v := range headers {
		opts = opts.WithHeader(jose.HeaderKey(name), v)
	}
	var key any = k.Signer
	if k.KID != "" {
		key = jose.JSONWebKey{Key: k.Signer, KeyID: k.KID}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Alg), Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// JWKS is the public JWK Set of keys, as JSON.
func JWKS(t testing.TB, keys ...Key) []byte {
	t.Helper()
	b, err := jwkSet(keys)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwkSet(keys []Key) ([]byte, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK())
	}
	return json.Marshal(set)
}

// KeyPEM encodes a private key as a PKCS#8 PEM block.
func KeyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteKey writes a new alg private key as PKCS#8 PEM to path (mode 0600,
// creating its folder) and returns the key and the PEM.
func WriteKey(t testing.TB, path, alg string) (crypto.Signer, []byte) {
	t.Helper()
	k := NewKey(t, alg)
	b := KeyPEM(t, k)
	WriteFile(t, path, b)
	return k, b
}

// WriteFile writes b to path (mode 0600), creating its folder.
func WriteFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// SignES256 returns the base64url ES256 signature (R || S, RFC 7518
// section 3.4) of input, for tests that build a JWS by hand: headers or
// payloads that no JWT library would produce.
func SignES256(t testing.TB, key *ecdsa.PrivateKey, input string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return base64.RawURLEncoding.EncodeToString(sig)
}
