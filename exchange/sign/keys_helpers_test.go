package sign

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
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// The key helpers below are keys_test.go's (exchange/keys): the signer's
// tests mint with the same keys.

// ltKeys are generated once per test binary: RSA generation is slow under -race.
type ltKeys struct {
	p256    *ecdsa.PrivateKey
	p384    *ecdsa.PrivateKey
	rsa2048 *rsa.PrivateKey
	rsa1024 *rsa.PrivateKey
	ed      ed25519.PrivateKey
	x25519  *ecdh.PrivateKey
}

var ltKeysOnce = sync.OnceValues(func() (*ltKeys, error) {
	var k ltKeys
	var err error
	if k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		return nil, err
	}
	if k.rsa2048, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
		return nil, err
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if k.x25519, err = ecdh.X25519().GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	return &k, nil
})

func ltGetKeys(t testing.TB) *ltKeys {
	t.Helper()
	k, err := ltKeysOnce()
	if err != nil {
		t.Fatalf("generate test keys: %v", err)
	}
	return k
}

func ltPEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func ltPKCS8(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("MarshalPKCS8PrivateKey: %v", err)
	}
	return ltPEM("PRIVATE KEY", der)
}

func ltSEC1(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("MarshalECPrivateKey: %v", err)
	}
	return ltPEM("EC PRIVATE KEY", der)
}

func ltPKCS1(key *rsa.PrivateKey) []byte {
	return ltPEM("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
}

// ltWrite writes data to a new file in a test folder and returns its path.
func ltWrite(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	oauthtest.WriteFile(t, p, data)
	return p
}

// ltFormat is one supported (alg, PEM encoding) pair.
type ltFormat struct {
	name   string
	alg    jose.SignatureAlgorithm
	pem    []byte
	public crypto.PublicKey
}

func ltFormats(t testing.TB) []ltFormat {
	k := ltGetKeys(t)
	return []ltFormat{
		{"ES256 SEC1", jose.ES256, ltSEC1(t, k.p256), k.p256.Public()},
		{"ES256 PKCS8", jose.ES256, ltPKCS8(t, k.p256), k.p256.Public()},
		{"RS256 PKCS1", jose.RS256, ltPKCS1(k.rsa2048), k.rsa2048.Public()},
		{"RS256 PKCS8", jose.RS256, ltPKCS8(t, k.rsa2048), k.rsa2048.Public()},
		{"PS256 PKCS8", jose.PS256, ltPKCS8(t, k.rsa2048), k.rsa2048.Public()},
		{"EdDSA PKCS8", jose.EdDSA, ltPKCS8(t, k.ed), k.ed.Public()},
	}
}

func ltThumbprint(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatalf("Thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// ltOpaqueSigner hides the concrete key type, like an HSM or KMS signer.
type ltOpaqueSigner struct{ crypto.Signer }

// ltLyingSigner claims one public key but signs with another.
type ltLyingSigner struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (s ltLyingSigner) Public() crypto.PublicKey { return s.pub }
