package server

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/tokengate/tokengate/config"
)

// loadTLS loads server.tls's certificate and key at build time, so that
// `check` refuses a file `serve` could not use, and a reload with a broken
// file keeps the running configuration. nil without server.tls.
func loadTLS(t *config.TLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	certPEM, err := os.ReadFile(t.CertFile)
	if err != nil {
		return nil, fmt.Errorf("server.tls.cert_file: %w", err)
	}
	if !hasPEMBlock(certPEM, "CERTIFICATE") {
		return nil, fmt.Errorf("server.tls.cert_file: %s holds no PEM certificate", t.CertFile)
	}
	keyPEM, err := os.ReadFile(t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("server.tls.key_file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("server.tls.key_file: %s is not the private key of cert_file: %w", t.KeyFile, err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// hasPEMBlock reports whether data holds a PEM block of the given type.
func hasPEMBlock(data []byte, typ string) bool {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type == typ {
			return true
		}
	}
}
