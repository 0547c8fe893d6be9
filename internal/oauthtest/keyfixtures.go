package oauthtest

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// KeyFixtures are private keys of every kind the key parsers meet (and two
// they must refuse: RSA-1024 and X25519), generated once per test binary:
// RSA generation is slow under -race.
type KeyFixtures struct {
	P256    *ecdsa.PrivateKey
	P384    *ecdsa.PrivateKey
	RSA2048 *rsa.PrivateKey
	RSA1024 *rsa.PrivateKey
	Ed      ed25519.PrivateKey
	X25519  *ecdh.PrivateKey
}

var keyFixturesOnce = sync.OnceValues(func() (*KeyFixtures, error) {
	var k KeyFixtures
	var err error
	if k.P256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.P384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		return nil, err
	}
	if k.RSA2048, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.RSA1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		return nil, err
	}
	if _, k.Ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if k.X25519, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	return &k, nil
})

// Keys returns the binary's key fixtures.
func Keys(t testing.TB) *KeyFixtures {
	t.Helper()
	k, err := keyFixturesOnce()
	if err != nil {
		t.Fatalf("generate test keys: %v", err)
	}
	return k
}

// PEMBlock encodes der as one PEM block of type typ.
func PEMBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// PKCS8PEM is key as a "PRIVATE KEY" block.
func PKCS8PEM(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("MarshalPKCS8PrivateKey: %v", err)
	}
	return PEMBlock("PRIVATE KEY", der)
}

// SEC1PEM is key as an "EC PRIVATE KEY" block.
func SEC1PEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("MarshalECPrivateKey: %v", err)
	}
	return PEMBlock("EC PRIVATE KEY", der)
}

// PKCS1PEM is key as an "RSA PRIVATE KEY" block.
func PKCS1PEM(key *rsa.PrivateKey) []byte {
	return PEMBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
}

// KeyFormat is one supported (alg, PEM encoding) pair of a signing key.
type KeyFormat struct {
	Name   string
	Alg    jose.SignatureAlgorithm
	PEM    []byte
	Public crypto.PublicKey
}

// KeyFormats are every signing algorithm in every PEM encoding tokengate reads.
func KeyFormats(t testing.TB) []KeyFormat {
	k := Keys(t)
	return []KeyFormat{
		{"ES256 SEC1", jose.ES256, SEC1PEM(t, k.P256), k.P256.Public()},
		{"ES256 PKCS8", jose.ES256, PKCS8PEM(t, k.P256), k.P256.Public()},
		{"RS256 PKCS1", jose.RS256, PKCS1PEM(k.RSA2048), k.RSA2048.Public()},
		{"RS256 PKCS8", jose.RS256, PKCS8PEM(t, k.RSA2048), k.RSA2048.Public()},
		{"PS256 PKCS8", jose.PS256, PKCS8PEM(t, k.RSA2048), k.RSA2048.Public()},
		{"EdDSA PKCS8", jose.EdDSA, PKCS8PEM(t, k.Ed), k.Ed.Public()},
	}
}

// Thumbprint is pub's RFC 7638 thumbprint, base64url: the default kid.
func Thumbprint(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("Thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}
