package oauthtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a private certificate authority minted for one test: it issues
// the server and client certificates of TLS and mTLS tests.
type CA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pem    []byte
	serial atomic.Int64
}

// NewCA makes a P-256 CA named name, valid from an hour ago to an hour on.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newP256(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.serial.Store(100)
	return ca
}

// PEM is the CA's certificate (a ca_file).
func (ca *CA) PEM() []byte { return ca.pem }

// Pool is a pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue makes a leaf certificate for name (a DNS name or an IP address),
// for a server or, with client, for mutual TLS; it returns the PEM pair
// and the certificate's serial (unique per CA).
func (ca *CA) Issue(t testing.TB, name string, client bool) (certPEM, keyPEM []byte, serial int64) {
	t.Helper()
	serial = ca.serial.Add(1)
	tmpl := leafTemplate(name, serial)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses, tmpl.DNSNames = nil, nil
	}
	key := newP256(t)
	certPEM, keyPEM = certAndKey(t, tmpl, ca.cert, &key.PublicKey, ca.key, key)
	return certPEM, keyPEM, serial
}

// SelfSigned is a self-signed certificate for name (a DNS name or an IP
// address) with the given serial, usable as its own CA, and its key: the
// simplest server.tls pair.
func SelfSigned(t testing.TB, name string, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	tmpl := leafTemplate(name, serial)
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	key := newP256(t)
	return certAndKey(t, tmpl, tmpl, &key.PublicKey, key, key)
}

// leafTemplate names name in the certificate's subject and its SANs.
func leafTemplate(name string, serial int64) *x509.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	return tmpl
}

// certAndKey signs tmpl with parent's key and returns the PEM certificate
// and the PKCS#8 PEM of key.
func certAndKey(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, signer, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte) {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
