package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// The interop tests run software nobody here wrote: node-oidc-provider as
// the authorization server and STS, a Node backend verifying with jose, and
// a Go backend verifying with coreos/go-oidc. `make test` installs the Node
// packages (npm ci in e2e/) and sets TOKENGATE_E2E_NODE=require, so there a
// missing Node is a failure; a plain `go test` skips instead.

// e2eNodeDir is the folder of the Node side, relative to this package.
var e2eNodeDir = filepath.Join("..", "..", "e2e")

// requireNode returns the node binary, or fails (under make test) or skips
// the test with what to do.
func requireNode(t *testing.T) string {
	t.Helper()
	problem := ""
	node, err := exec.LookPath("node")
	switch {
	case err != nil:
		problem = "node is not installed (the interop tests need Node.js 20 or later and npm)"
	case !fileExists(filepath.Join(e2eNodeDir, "node_modules", "oidc-provider", "package.json")) ||
		!fileExists(filepath.Join(e2eNodeDir, "node_modules", "jose", "package.json")):
		problem = "e2e/node_modules is missing: run `npm ci` in e2e/ (make test does)"
	}
	if problem == "" {
		return node
	}
	if os.Getenv("TOKENGATE_E2E_NODE") == "require" {
		t.Fatalf("interop test cannot run: %s", problem)
	}
	t.Skipf("interop test skipped: %s; `make test` installs and requires it", problem)
	return ""
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// nodeProcess is a Node script started by a test; it ends with the test.
type nodeProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

// startNode runs `node script args...` in e2e/ and returns the JSON object
// it prints first (where it listens), failing the test if it does not print
// one within 30 seconds.
func startNode(t *testing.T, node, script string, args ...string) (map[string]any, *nodeProcess) {
	t.Helper()
	cmd := exec.Command(node, append([]string{script}, args...)...)
	cmd.Dir = e2eNodeDir
	p := &nodeProcess{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", script, p.stderr.String())
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		if first {
			close(lines)
		}
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("node %s exited before it listened:\n%s", script, p.stderr.String())
		}
		var ready map[string]any
		if err := json.Unmarshal([]byte(line), &ready); err != nil {
			t.Fatalf("node %s printed %q, not its address as JSON", script, line)
		}
		return ready, p
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s did not print its address within 30s:\n%s", script, p.stderr.String())
	}
	return nil, nil
}

// startNodeBackend starts e2e/backend.mjs: an API that accepts tokens of
// issuer for audience, verified with jose. It returns its base URL.
func startNodeBackend(t *testing.T, node, issuer, audience string) string {
	t.Helper()
	ready, _ := startNode(t, node, "backend.mjs", issuer, audience)
	port, ok := ready["port"].(float64)
	if !ok {
		t.Fatalf("backend.mjs printed %v", ready)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", int(port))
}

// oidcBackend is an API in Go that verifies bearer tokens with
// coreos/go-oidc: the verifier comes from the issuer's discovery URL, and it
// checks the signature, iss, exp and that aud holds this API's audience. It
// finds the keys on first use, so it may start before the issuer.
type oidcBackend struct {
	issuer, audience string
	srv              *httptest.Server
	client           *http.Client

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	tokens   []string // bearer tokens received, for leak checks
}

func newOIDCBackend(t *testing.T, issuer, audience string) *oidcBackend {
	t.Helper()
	b := &oidcBackend{issuer: issuer, audience: audience, client: &http.Client{Timeout: 10 * time.Second}}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *oidcBackend) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.verifier == nil {
		provider, err := oidc.NewProvider(oidc.ClientContext(ctx, b.client), b.issuer)
		if err != nil {
			return nil, err
		}
		b.verifier = provider.Verifier(&oidc.Config{ClientID: b.audience})
	}
	return b.verifier, nil
}

func (b *oidcBackend) serve(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	b.mu.Lock()
	b.tokens = append(b.tokens, raw)
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "no bearer token"})
		return
	}
	ctx := oidc.ClientContext(r.Context(), b.client)
	v, err := b.verifierFor(ctx)
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "issuer unavailable", "message": err.Error()})
		return
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid token", "message": err.Error()})
		return
	}
	var claims map[string]any
	_ = tok.Claims(&claims)
	_ = json.NewEncoder(w).Encode(map[string]any{"backend": "go-oidc", "path": r.URL.Path, "claims": claims})
}

func (b *oidcBackend) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.tokens...)
}

// backendAnswer is what both backends answer.
type backendAnswer struct {
	Backend string         `json:"backend"`
	Claims  map[string]any `json:"claims"`
	Error   string         `json:"error"`
	Message string         `json:"message"`
}

// edgeGet sends GET path through the gateway with the bearer token and
// decodes the answer.
func edgeGet(t *testing.T, edge, path, token string) (int, backendAnswer, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, edge+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var a backendAnswer
	_ = json.Unmarshal(body, &a)
	return resp.StatusCode, a, string(body)
}

// postForm posts a form with HTTP Basic client credentials (RFC 6749
// 2.3.1 encoding) and decodes the JSON answer.
func postForm(t *testing.T, endpoint, user, pass string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	return resp.StatusCode, out
}

// startProvider runs e2e/provider.mjs (node-oidc-provider) with the JSON
// configuration cfg and returns its issuer URL.
func startProvider(t *testing.T, node string, cfg []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "provider.json")
	writeFile(t, path, cfg)
	ready, _ := startNode(t, node, "provider.mjs", path)
	issuer, _ := ready["issuer"].(string)
	if !strings.HasPrefix(issuer, "http://127.0.0.1:") {
		t.Fatalf("provider.mjs printed %v", ready)
	}
	return issuer
}

// clientCredentials gets the interop client's access token for resource
// and scope from the provider.
func clientCredentials(t *testing.T, issuer, resource, scope string) string {
	t.Helper()
	status, out := postForm(t, issuer+"/token", ioAppID, ioAppSecret, url.Values{
		"grant_type": {"client_credentials"},
		"resource":   {resource},
		"scope":      {scope},
	})
	tok, _ := out["access_token"].(string)
	if status != http.StatusOK || tok == "" {
		t.Fatalf("client_credentials token for %s: %d %v", resource, status, out)
	}
	return tok
}

// ioLocalSide prepares a local-mode tokengate for an interop test: an
// ES256 signing key es256.pem in dir, and backends (go-oidc for orders,
// jose for inventory) that trust tokengate's own issuer, the admin
// listener's URL. The listener is bound first so the backends know the
// URL; they find the keys on first use, so tokengate may start after them.
func ioLocalSide(t *testing.T, node string) (dir string, adminLn net.Listener, iss string, goBE *oidcBackend, nodeBE string) {
	t.Helper()
	dir = t.TempDir()
	writeES256Key(t, filepath.Join(dir, "es256.pem"))
	var err error
	adminLn, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss = "http://" + adminLn.Addr().String()
	return dir, adminLn, iss, newOIDCBackend(t, iss, ioOrders), startNodeBackend(t, node, iss, ioInventory)
}
