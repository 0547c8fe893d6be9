package oauthtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// NewKey generates a private key for alg: ES256 (P-256), RS256 and PS256
// (RSA 2048), EdDSA (Ed25519).
func NewKey(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
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
