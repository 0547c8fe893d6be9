package server

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

func serialOf(t *testing.T, c *tls.Certificate) int64 {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.Int64()
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeyPairReload: a changed pair is swapped in only when it matches; a
// certificate beside the old key (a rotation half done), a missing file or
// garbage keep the previous pair, and each refused content is reported once.
func TestKeyPairReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, k1 := oauthtest.SelfSigned(t, "example.internal", 1)
	write(t, certFile, c1)
	write(t, keyFile, k1)
	p, err := loadKeyPair("server.tls", kindServerCert, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c2, k2 := oauthtest.SelfSigned(t, "example.internal", 2)
	steps := []struct {
		name          string
		cert, key     []byte
		changed, fail bool
		serial        int64
	}{
		{"unchanged", c1, k1, false, false, 1},
		{"new certificate, old key", c2, k1, true, true, 1},
		{"the same half rotation again is not reported twice", c2, k1, false, false, 1},
		{"not PEM", []byte("garbage"), k1, true, true, 1},
		{"whole rotation", c2, k2, true, false, 2},
	}
	for _, s := range steps {
		write(t, certFile, s.cert)
		write(t, keyFile, s.key)
		changed, err := p.reload()
		if changed != s.changed || (err != nil) != s.fail {
			t.Errorf("%s: changed %v, err %v; want changed %v, failure %v", s.name, changed, err, s.changed, s.fail)
		}
		if got := serialOf(t, p.current()); got != s.serial {
			t.Errorf("%s: serving serial %d, want %d", s.name, got, s.serial)
		}
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := p.reload(); err == nil {
		t.Error("a missing key file was not reported")
	}
	if changed, err := p.reload(); changed || err != nil {
		t.Errorf("a key file still missing: changed %v, err %v; want it reported once", changed, err)
	}
	if got := serialOf(t, p.current()); got != 2 {
		t.Errorf("a missing key file: serving serial %d, want 2", got)
	}
}

// TestCABundleReload: a bundle without a certificate keeps the previous
// roots, so a bad rotation never leaves an upstream unverifiable or open.
func TestCABundleReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ca.crt")
	c1, _ := oauthtest.SelfSigned(t, "example.internal", 1)
	write(t, file, c1)
	b, err := loadCABundle("routes[0].tls.ca_file", file)
	if err != nil {
		t.Fatal(err)
	}
	first := b.roots()
	write(t, file, []byte("-----BEGIN NOTHING-----\n"))
	if changed, err := b.reload(); !changed || err == nil {
		t.Errorf("an empty bundle: changed %v, err %v; want a reported failure", changed, err)
	}
	if b.roots() != first {
		t.Error("an empty bundle replaced the roots")
	}
	c2, _ := oauthtest.SelfSigned(t, "example.internal", 2)
	write(t, file, append(c1, c2...))
	if changed, err := b.reload(); !changed || err != nil {
		t.Fatalf("a good bundle: changed %v, err %v", changed, err)
	}
	if b.roots() == first {
		t.Error("a good bundle was not swapped in")
	}
}
