package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

func tlsPair(t testing.TB, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// secretDir mimics a Kubernetes Secret volume as cert-manager updates it:
// the files are reached through a "..data" symlink that is swapped
// atomically to a new folder.
type secretDir struct {
	dir string
	gen int
}

func newSecretDir(t testing.TB, files map[string][]byte) *secretDir {
	t.Helper()
	s := &secretDir{dir: t.TempDir()}
	s.update(t, files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(s.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *secretDir) path(name string) string { return filepath.Join(s.dir, name) }

// update writes every file into a new folder, then swaps ..data to it.
func (s *secretDir) update(t testing.TB, files map[string][]byte) {
	t.Helper()
	s.gen++
	ver := fmt.Sprintf("..v%d", s.gen)
	for name, b := range files {
		writeFile(t, filepath.Join(s.dir, ver, name), b)
	}
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(ver, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// tlsUpstream is an https backend with a private CA that requires a client
// certificate and records what each request's TLS connection carried.
type tlsUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	cert atomic.Pointer[tls.Certificate]
	seen []tlsSeen
}

type tlsSeen struct {
	proto, serverName string
	clientSerial      int64
	auth              string
}

func newTLSUpstream(t testing.TB, ca *oauthtest.CA, serverCert tls.Certificate, clientCAs *x509.CertPool) *tlsUpstream {
	t.Helper()
	u := &tlsUpstream{}
	u.cert.Store(&serverCert)
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := tlsSeen{proto: r.Proto, serverName: r.TLS.ServerName, auth: r.Header.Get("Authorization")}
		if len(r.TLS.PeerCertificates) > 0 {
			s.clientSerial = r.TLS.PeerCertificates[0].SerialNumber.Int64()
		}
		u.mu.Lock()
		u.seen = append(u.seen, s)
		u.mu.Unlock()
		io.WriteString(w, `{"backend":"tls"}`)
	}))
	u.srv.EnableHTTP2 = true
	// Refused handshakes are what some cases expect: keep them out of the output.
	u.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	u.srv.TLS = &tls.Config{
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  clientCAs,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return u.cert.Load(), nil
		},
	}
	u.srv.StartTLS()
	t.Cleanup(u.srv.Close)
	return u
}

func (u *tlsUpstream) last() (tlsSeen, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.seen) == 0 {
		return tlsSeen{}, 0
	}
	return u.seen[len(u.seen)-1], len(u.seen)
}

// servedSerial is the serial of the certificate the edge serves on a new
// connection, verified against roots for 127.0.0.1 (0 when it fails).
func servedSerial(addr string, roots *x509.CertPool) int64 {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"h2"}})
	if err != nil {
		return 0
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestE2ETLSEdgeAndUpstream: the edge serves h2 over TLS (ALPN) with a
// certificate from a private CA; the orders route reaches an https
// upstream over HTTP/2 with ca_file as its only roots, a client certificate
// (mTLS) and server_name as SNI and verified name. Every file is then
// rotated on disk (Secret-volume symlink swap) and picked up without a
// restart, while a certificate that does not match its key is kept out.
func TestE2ETLSEdgeAndUpstream(t *testing.T) {
	ca := oauthtest.NewCA(t, "test CA")
	edgeCert, edgeKey, edgeSerial := ca.Issue(t, "127.0.0.1", false)
	clientCert, clientKey, clientSerial := ca.Issue(t, "tokengate", true)
	upCert, upKey, _ := ca.Issue(t, "orders.internal", false)
	up := newTLSUpstream(t, ca, tlsPair(t, upCert, upKey), ca.Pool())

	edgeDir := newSecretDir(t, map[string][]byte{"tls.crt": edgeCert, "tls.key": edgeKey})
	clientDir := newSecretDir(t, map[string][]byte{"tls.crt": clientCert, "tls.key": clientKey, "ca.crt": ca.PEM()})

	idp := newE2EIdP(t)
	orders := newE2EBackend(t, "orders")
	g := startE2EWith(t, idp, orders, newE2EBackend(t, "inventory"), e2eOptions{
		edit: func(text, _ string) string {
			text = strings.Replace(text, "server:\n", fmt.Sprintf("server:\n  tls: {cert_file: %q, key_file: %q}\n",
				edgeDir.path("tls.crt"), edgeDir.path("tls.key")), 1)
			// The upstream is reached by IP address; its certificate names
			// orders.internal, which only server_name makes acceptable.
			return strings.Replace(text, fmt.Sprintf("    upstream: %q\n", orders.srv.URL), fmt.Sprintf(
				"    upstream: %q\n    tls: {ca_file: %q, cert_file: %q, key_file: %q, server_name: orders.internal}\n",
				up.srv.URL, clientDir.path("ca.crt"), clientDir.path("tls.crt"), clientDir.path("tls.key")), 1)
		},
	})
	roots := ca.Pool()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"},
		ForceAttemptHTTP2: true,
	}}
	t.Cleanup(client.CloseIdleConnections)
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	call := func() (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+g.srv.edgeAddr.String()+"/orders/1", nil)
		req.Header.Set("Authorization", "Bearer "+umbrella)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 {
			return -1, "edge spoke " + resp.Proto
		}
		return resp.StatusCode, string(b)
	}

	// First: h2 at the edge, HTTP/2 + mTLS + SNI to the upstream.
	if code, body := call(); code != 200 {
		t.Fatalf("through TLS: %d %s", code, body)
	}
	if got := servedSerial(g.srv.edgeAddr.String(), roots); got != edgeSerial {
		t.Fatalf("edge serves serial %d, want %d", got, edgeSerial)
	}
	seen, n := up.last()
	if n != 1 || seen.proto != "HTTP/2.0" || seen.serverName != "orders.internal" || seen.clientSerial != clientSerial {
		t.Fatalf("upstream saw %+v (%d requests); want HTTP/2.0, SNI orders.internal, client serial %d", seen, n, clientSerial)
	}
	if seen.auth == "Bearer "+umbrella || !strings.HasPrefix(seen.auth, "Bearer ") {
		t.Fatalf("upstream Authorization %q: want the exchanged token", seen.auth)
	}

	// A rotation half done: a new edge certificate with the old key. The
	// previous pair keeps serving; the reload error is counted.
	before := scrape(t, g)
	errKey := series("tokengate_tls_reloads_total", map[string]string{"file_kind": "server_certificate", "result": "error"})
	okKey := series("tokengate_tls_reloads_total", map[string]string{"file_kind": "server_certificate", "result": "ok"})
	newEdgeCert, newEdgeKey, newEdgeSerial := ca.Issue(t, "127.0.0.1", false)
	edgeDir.update(t, map[string][]byte{"tls.crt": newEdgeCert, "tls.key": edgeKey})
	waitFor(t, func() bool { return scrape(t, g)[errKey] > before[errKey] })
	if got := servedSerial(g.srv.edgeAddr.String(), roots); got != edgeSerial {
		t.Fatalf("a mismatched pair: edge serves serial %d, want the previous %d", got, edgeSerial)
	}
	if !strings.Contains(g.logs.String(), "TLS file reload failed") {
		t.Error("the refused rotation is not logged")
	}
	// The rotation completes: the new pair is served, without a restart.
	edgeDir.update(t, map[string][]byte{"tls.crt": newEdgeCert, "tls.key": newEdgeKey})
	waitFor(t, func() bool { return servedSerial(g.srv.edgeAddr.String(), roots) == newEdgeSerial })
	if after := scrape(t, g); after[okKey] <= before[okKey] {
		t.Errorf("%s did not move on a good rotation", okKey)
	}

	// The client certificate rotates: the upstream sees the new one on the
	// next connection.
	newClientCert, newClientKey, newClientSerial := ca.Issue(t, "tokengate", true)
	clientDir.update(t, map[string][]byte{"tls.crt": newClientCert, "tls.key": newClientKey, "ca.crt": ca.PEM()})
	waitFor(t, func() bool {
		up.srv.CloseClientConnections()
		code, _ := call()
		seen, _ := up.last()
		return code == 200 && seen.clientSerial == newClientSerial
	})

	// The upstream moves to a certificate from another CA: refused (502)
	// until ca_file names that CA, then accepted without a restart.
	ca2 := oauthtest.NewCA(t, "second CA")
	upCert2, upKey2, _ := ca2.Issue(t, "orders.internal", false)
	pair2 := tlsPair(t, upCert2, upKey2)
	up.cert.Store(&pair2)
	up.srv.CloseClientConnections()
	if code, body := call(); code != http.StatusBadGateway {
		t.Fatalf("an upstream certificate from an untrusted CA: %d %s, want 502", code, body)
	}
	clientDir.update(t, map[string][]byte{"tls.crt": newClientCert, "tls.key": newClientKey, "ca.crt": append(ca.PEM(), ca2.PEM()...)})
	waitFor(t, func() bool {
		code, _ := call()
		return code == 200
	})
}

// TestE2ETLSUpstreamNameIsNeverHost: without server_name the name checked
// is the upstream URL's host; a client's Host header changes nothing, and a
// certificate for another name is refused (502).
func TestE2ETLSUpstreamNameIsNeverHost(t *testing.T) {
	ca := oauthtest.NewCA(t, "test CA")
	clientCert, clientKey, _ := ca.Issue(t, "tokengate", true)
	upCert, upKey, _ := ca.Issue(t, "orders.internal", false)
	up := newTLSUpstream(t, ca, tlsPair(t, upCert, upKey), ca.Pool())
	dir := newSecretDir(t, map[string][]byte{"tls.crt": clientCert, "tls.key": clientKey, "ca.crt": ca.PEM()})
	idp := newE2EIdP(t)
	orders := newE2EBackend(t, "orders")
	g := startE2EWith(t, idp, orders, newE2EBackend(t, "inventory"), e2eOptions{
		edit: func(text, _ string) string {
			return strings.Replace(text, fmt.Sprintf("    upstream: %q\n", orders.srv.URL), fmt.Sprintf(
				"    upstream: %q\n    tls: {ca_file: %q, cert_file: %q, key_file: %q}\n",
				up.srv.URL, dir.path("ca.crt"), dir.path("tls.crt"), dir.path("tls.key")), 1)
		},
	})
	req, _ := http.NewRequest(http.MethodGet, g.srv.EdgeURL()+"/orders/1", nil)
	req.Host = "orders.internal"
	req.Header.Set("Authorization", "Bearer "+idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502: the certificate names orders.internal, the upstream is 127.0.0.1", resp.StatusCode)
	}
	if _, n := up.last(); n != 0 {
		t.Fatal("a request reached an upstream whose certificate failed verification")
	}
}

// TestE2ETLSUpstreamWithoutH2: an https upstream that does not offer h2
// is spoken to in HTTP/1.1, with the same custom TLS configuration.
func TestE2ETLSUpstreamWithoutH2(t *testing.T) {
	ca := oauthtest.NewCA(t, "test CA")
	upCert, upKey, _ := ca.Issue(t, "127.0.0.1", false)
	var proto atomic.Value
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		io.WriteString(w, "ok")
	}))
	up.TLS = &tls.Config{Certificates: []tls.Certificate{tlsPair(t, upCert, upKey)}}
	up.StartTLS() // HTTP/1.1 only: EnableHTTP2 is false
	t.Cleanup(up.Close)
	dir := newSecretDir(t, map[string][]byte{"ca.crt": ca.PEM()})
	idp := newE2EIdP(t)
	orders := newE2EBackend(t, "orders")
	g := startE2EWith(t, idp, orders, newE2EBackend(t, "inventory"), e2eOptions{
		edit: func(text, _ string) string {
			return strings.Replace(text, fmt.Sprintf("    upstream: %q\n", orders.srv.URL), fmt.Sprintf(
				"    upstream: %q\n    tls: {ca_file: %q}\n", up.URL, dir.path("ca.crt")), 1)
		},
	})
	resp, body := g.get(t, "/orders/1", idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"}))
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("status %d %q, want 200 from the HTTP/1.1 upstream", resp.StatusCode, body)
	}
	if p, _ := proto.Load().(string); p != "HTTP/1.1" {
		t.Errorf("upstream spoke %q, want HTTP/1.1", p)
	}
}

// TestE2EGRPCOverTLSEdge: a grpc-go client reaches a gRPC route over TLS
// (h2 by ALPN) at the edge; the gateway's refusal is a gRPC status there
// too.
func TestE2EGRPCOverTLSEdge(t *testing.T) {
	ca := oauthtest.NewCA(t, "test CA")
	edgeCert, edgeKey, _ := ca.Issue(t, "127.0.0.1", false)
	dir := newSecretDir(t, map[string][]byte{"tls.crt": edgeCert, "tls.key": edgeKey})
	backend := newGRPCBackend(t)
	idp := newE2EIdP(t)
	g := startE2EWith(t, idp, newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"), e2eOptions{
		edit: func(text, edge string) string {
			text = strings.Replace(text, "server:\n", fmt.Sprintf("server:\n  tls: {cert_file: %q, key_file: %q}\n",
				dir.path("tls.crt"), dir.path("tls.key")), 1)
			return grpcRoutes(backend.addr)(text, edge)
		},
	})
	conn, err := grpc.NewClient("passthrough:///"+g.srv.edgeAddr.String(),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := testpb.NewTestServiceClient(conn)
	token := idp.mint(t, map[string]any{"sub": "u", "aud": audGRPC})
	ctx, cancel := context.WithTimeout(withBearer(t.Context(), token), 10*time.Second)
	defer cancel()
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("tls")}})
	if err != nil || string(resp.GetPayload().GetBody()) != "tls" {
		t.Fatalf("unary over TLS: %v %v", resp, err)
	}
	var trailer metadata.MD
	_, err = client.UnaryCall(t.Context(), &testpb.SimpleRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.Unauthenticated || len(trailer.Get("www-authenticate")) == 0 {
		t.Fatalf("no token over TLS: %v, trailer %v; want UNAUTHENTICATED with a challenge", err, trailer)
	}
}
