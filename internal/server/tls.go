package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
)

// DefaultTLSPollInterval is how often the TLS files (server.tls,
// routes[].tls) are read again to find a rotation: cert-manager and
// Kubernetes Secret volumes replace files in place through a symlink swap,
// which a content comparison sees whatever the file system reports.
const DefaultTLSPollInterval = config.DefaultTLSPollInterval

// File kinds of tokengate_tls_reloads_total.
const (
	kindServerCert   = "server_certificate"
	kindUpstreamCert = "upstream_client_certificate"
	kindUpstreamCA   = "upstream_ca"
)

// errNoPEMCertificate: a certificate or CA file without a PEM certificate.
var errNoPEMCertificate = errors.New("holds no PEM certificate")

// tlsFile is one certificate/key pair or CA bundle on disk, loaded at build
// time and reloaded when its content changes.
type tlsFile interface {
	// reload reads the files again; changed is false when their content is
	// what was last seen (loaded or refused).
	reload() (changed bool, err error)
	kind() string
	key() string // the configuration key path, for the log
}

// keyPair is a certificate and its private key. The pair in use changes
// only when both files read back as a matching pair: a rotation half done
// (a new certificate with the old key) keeps the previous pair serving.
type keyPair struct {
	certFile, keyFile string
	path, fileKind    string
	mu                sync.RWMutex
	cert              *tls.Certificate
	seenCert, seenKey []byte
	unreadable        readFailure
}

// readFailure remembers the last failure to read a file, so a file that
// stays missing is reported once, not at every poll.
type readFailure struct{ last string }

// report returns err the first time it is seen in a row, nil after.
func (f *readFailure) report(err error) error {
	if err == nil {
		f.last = ""
		return nil
	}
	if err.Error() == f.last {
		return nil
	}
	f.last = err.Error()
	return err
}

func loadKeyPair(path, fileKind, certFile, keyFile string) (*keyPair, error) {
	p := &keyPair{certFile: certFile, keyFile: keyFile, path: path, fileKind: fileKind}
	if _, err := p.reload(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *keyPair) kind() string { return p.fileKind }
func (p *keyPair) key() string  { return p.path }

// reload runs on the polling goroutine only (and once at build time).
func (p *keyPair) reload() (bool, error) {
	certPEM, err := os.ReadFile(p.certFile)
	if err != nil {
		err = p.unreadable.report(fmt.Errorf("%s.cert_file: %w", p.path, err))
		return err != nil, err
	}
	keyPEM, err := os.ReadFile(p.keyFile)
	if err != nil {
		err = p.unreadable.report(fmt.Errorf("%s.key_file: %w", p.path, err))
		return err != nil, err
	}
	p.unreadable.report(nil)
	p.mu.RLock()
	same := bytes.Equal(certPEM, p.seenCert) && bytes.Equal(keyPEM, p.seenKey)
	p.mu.RUnlock()
	if same {
		return false, nil
	}
	cert, err := parseKeyPair(p.path, p.certFile, p.keyFile, certPEM, keyPEM)
	p.mu.Lock()
	defer p.mu.Unlock()
	// Refused contents are remembered too: one error per rotation, not
	// one per poll.
	p.seenCert, p.seenKey = certPEM, keyPEM
	if err != nil {
		return true, err
	}
	p.cert = cert
	return true, nil
}

func parseKeyPair(path, certFile, keyFile string, certPEM, keyPEM []byte) (*tls.Certificate, error) {
	if !hasPEMBlock(certPEM, "CERTIFICATE") {
		return nil, fmt.Errorf("%s.cert_file: %s %w", path, certFile, errNoPEMCertificate)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s.key_file: %s is not the private key of cert_file: %w", path, keyFile, err)
	}
	return &cert, nil
}

// current is the pair in use.
func (p *keyPair) current() *tls.Certificate {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cert
}

// caBundle is a PEM bundle of CA certificates, the roots of one upstream.
type caBundle struct {
	file, path string
	mu         sync.RWMutex
	pool       *x509.CertPool
	seen       []byte
	unreadable readFailure
}

func loadCABundle(path, file string) (*caBundle, error) {
	b := &caBundle{file: file, path: path}
	if _, err := b.reload(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *caBundle) kind() string { return kindUpstreamCA }
func (b *caBundle) key() string  { return b.path }

func (b *caBundle) reload() (bool, error) {
	data, err := os.ReadFile(b.file)
	if err != nil {
		err = b.unreadable.report(fmt.Errorf("%s: %w", b.path, err))
		return err != nil, err
	}
	b.unreadable.report(nil)
	b.mu.RLock()
	same := bytes.Equal(data, b.seen)
	b.mu.RUnlock()
	if same {
		return false, nil
	}
	pool := x509.NewCertPool()
	ok := pool.AppendCertsFromPEM(data)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = data
	if !ok {
		return true, fmt.Errorf("%s: %s %w", b.path, b.file, errNoPEMCertificate)
	}
	b.pool = pool
	return true, nil
}

func (b *caBundle) roots() *x509.CertPool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.pool
}

// tlsFiles are every TLS file of one generation: the edge's certificate
// and each upstream's CA and client certificate. watch polls them.
type tlsFiles struct {
	files []tlsFile
}

func (f *tlsFiles) add(file tlsFile) { f.files = append(f.files, file) }

// watch reloads the files every interval until ctx ends: a change is
// logged and counted as ok, a file that cannot be used (missing, not PEM,
// a certificate that does not match its key) is logged and counted as an
// error while the previous certificate goes on serving.
func (f *tlsFiles) watch(ctx context.Context, interval time.Duration, logger *slog.Logger, counter *prometheus.CounterVec) {
	if len(f.files) == 0 {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, file := range f.files {
			changed, err := file.reload()
			switch {
			case err != nil && changed:
				counter.WithLabelValues(file.kind(), "error").Inc()
				logger.Error("TLS file reload failed; the previous certificate stays in use", "key", file.key(), "error", err)
			case changed:
				counter.WithLabelValues(file.kind(), "ok").Inc()
				logger.Info("TLS file reloaded", "key", file.key())
			}
		}
	}
}

// loadTLS loads server.tls's certificate and key at build time, so that
// `check` refuses a file `serve` could not use, and a reload with a broken
// file keeps the running configuration. The configuration serves the pair
// in use through GetCertificate, so a rotation on disk takes effect on the
// next handshake. nil without server.tls.
func loadTLS(t *config.TLS, files *tlsFiles) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	pair, err := loadKeyPair("server.tls", kindServerCert, t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	files.add(pair)
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return pair.current(), nil
		},
	}, nil
}

// upstreamTLS builds the TLS client configuration of every route with
// routes[].tls, by route index, loading its files.
func upstreamTLS(routes []config.Route, files *tlsFiles) (map[int]*tls.Config, error) {
	out := make(map[int]*tls.Config)
	for i, r := range routes {
		if r.TLS == nil {
			continue
		}
		cfg, err := routeTLS(fmt.Sprintf("routes[%d]", i), r, files)
		if err != nil {
			return nil, err
		}
		out[i] = cfg
	}
	return out, nil
}

// routeTLS is one upstream's TLS client configuration. The name checked is
// server_name, else the upstream URL's host, never the request's Host. A
// ca_file replaces the system roots: the chain is verified in
// VerifyConnection against the bundle in use, so a rotated CA applies to
// the next connection (crypto/tls's own check is off only because it
// cannot see a changing pool; this check is the same, done by hand).
func routeTLS(path string, r config.Route, files *tlsFiles) (*tls.Config, error) {
	t := r.TLS
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CertFile != "" {
		pair, err := loadKeyPair(path+".tls", kindUpstreamCert, t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		files.add(pair)
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return pair.current(), nil
		}
	}
	if t.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
		return cfg, nil
	}
	if t.CAFile == "" {
		return cfg, nil // the system roots, checked by crypto/tls
	}
	ca, err := loadCABundle(path+".tls.ca_file", t.CAFile)
	if err != nil {
		return nil, err
	}
	files.add(ca)
	name := t.ServerName
	if name == "" {
		u, err := url.Parse(r.Upstream)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("%s.upstream: %q has no host to verify", path, r.Upstream)
		}
		name = u.Hostname()
	}
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return verifyPeer(cs, ca.roots(), name)
	}
	return cfg, nil
}

// verifyPeer checks the upstream's chain against roots and name, as
// crypto/tls would with RootCAs and ServerName set.
func verifyPeer(cs tls.ConnectionState, roots *x509.CertPool, name string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the upstream sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       name,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("tls: the upstream's certificate: %w", err)
	}
	return nil
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
