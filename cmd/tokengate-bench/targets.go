package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/exchange/keys"
	"github.com/tokengate/tokengate/gateway"
)

// Each proxy under test runs in its own process, so that its CPU time can be
// read from /proc/PID/stat without the load generator's and the backend's.
// tokengate runs as the real binary (`tokengate serve`), wired exactly as in
// production; the bare proxy is this program re-executed in child mode.
const (
	childEnv    = "TOKENGATE_BENCH_CHILD"
	upstreamEnv = "TOKENGATE_BENCH_UPSTREAM"
)

// target is one proxy process under load.
type target struct {
	name string
	url  string // edge base URL
	// authzURL is tokengate's forward-auth listener (authz.listen); "" for
	// the other targets.
	authzURL string
	cmd      *exec.Cmd
	stop     func()
}

// pid is the process whose CPU time is charged to this target.
func (t *target) pid() int { return t.cmd.Process.Pid }

func (t *target) close() {
	if t.stop != nil {
		t.stop()
	}
	if t.cmd != nil && t.cmd.Process != nil {
		t.cmd.Process.Kill()
		t.cmd.Wait()
	}
}

// runChild serves the bare reverse proxy when this program was started as a
// child; it reports whether it did.
func runChild() bool {
	if os.Getenv(childEnv) != "bare" {
		return false
	}
	if err := serveBare(os.Getenv(upstreamEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "bare proxy:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

// serveBare is the reference: httputil.ReverseProxy with the gateway's own
// upstream transport tuning and a buffer pool like the gateway's, behind an
// http.Server with tokengate's default server settings. It exits when its
// stdin closes (the parent is gone).
func serveBare(upstream string) error {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return fmt.Errorf("upstream %q: not a URL", upstream)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	transport := gateway.UpstreamTransport(5 * time.Second)
	proxy := &httputil.ReverseProxy{
		Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() },
		Transport:  transport,
		BufferPool: gateway.NewBufferPool(),
	}
	if u.Scheme == "h2c" {
		// The grpc scenario's reference: cleartext HTTP/2 to the upstream,
		// every write flushed, as tokengate does for gRPC calls.
		u.Scheme = "http"
		transport.Protocols = new(http.Protocols)
		transport.Protocols.SetUnencryptedHTTP2(true)
		proxy.FlushInterval = -1
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10,
		Protocols: h2cProtocols()}
	fmt.Printf("listening %s\n", ln.Addr())
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	return srv.Serve(ln)
}

// startBare starts the bare proxy child in front of upstream.
func startBare(upstream string) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=bare", upstreamEnv+"="+upstream)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bare proxy: %w", err)
	}
	t := &target{name: "bare", cmd: cmd, stop: func() { stdin.Close() }}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		t.close()
		return nil, fmt.Errorf("bare proxy did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, out)
	t.url = "http://" + addr
	return t, nil
}

// benchRoutes is how many routes (and audiences) the configuration has.
const benchRoutes = 10

func audience(i int) string  { return "https://api" + strconv.Itoa(i) + ".example.com" }
func routePath(i int) string { return "/r" + strconv.Itoa(i) }

func audiences() []string {
	a := make([]string, benchRoutes)
	for i := range a {
		a[i] = audience(i)
	}
	return a
}

func allScopes() string {
	s := make([]string, benchRoutes)
	for i := range s {
		s[i] = "api" + strconv.Itoa(i) + ":read"
	}
	return strings.Join(s, " ")
}

// tokengateOptions are what a tokengate child is configured with.
type tokengateOptions struct {
	binary   string
	upstream string
	idp      *devIdP
	logLevel string
	redis    string // host:port of a Redis for the shared tier; "" for none
	redisKey string // its encryption_key
	// maxEntries is cache.max_entries; 0 means 1,000,000.
	maxEntries int
	dir        string
	// grpcUpstream, when set, adds the grpc route (h2c) over this http:// URL.
	grpcUpstream string
	// otlp is the OTLP receiver's base URL and ratio tracing.sample_ratio;
	// otlp "" is tracing off.
	otlp, ratio string
	// authz is authz.listen (the forward-auth listener); "" is off.
	authz string
}

// configText is a tokengate configuration with benchRoutes routes over
// upstream, all trusting the dev IdP.
func configText(o tokengateOptions, edge, admin string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n  listen: %q\n  admin_listen: %q\n", edge, admin)
	fmt.Fprintf(&b, "log:\n  level: %s\n", o.logLevel)
	fmt.Fprintf(&b, "issuers:\n  - issuer: %q\n    jwks_uri: %q\n    algorithms: [ES256]\n", o.idp.url, o.idp.jwksURI())
	fmt.Fprintf(&b, "exchange:\n  token_ttl: 10m\n  local:\n    issuer: %q\n    signing_keys:\n      - file: %q\n        alg: ES256\n",
		"http://"+admin, filepath.Join(o.dir, "es256.pem"))
	if o.maxEntries == 0 {
		o.maxEntries = 1_000_000
	}
	fmt.Fprintf(&b, "cache:\n  max_entries: %d\n", o.maxEntries)
	if o.redis != "" {
		fmt.Fprintf(&b, "  redis:\n    addrs: [%q]\n    encryption_key: %q\n", o.redis, o.redisKey)
	}
	if o.authz != "" {
		fmt.Fprintf(&b, "authz:\n  listen: %q\n", o.authz)
	}
	if o.otlp != "" {
		fmt.Fprintf(&b, "tracing:\n  otlp_endpoint: %q\n  sample_ratio: %s\n", o.otlp, o.ratio)
	}
	b.WriteString("routes:\n")
	for i := range benchRoutes {
		fmt.Fprintf(&b, "  - name: r%d\n    path_prefix: %s\n    upstream: %q\n    audience: %q\n    scopes: [api%d:read]\n    timeout: 5s\n",
			i, routePath(i), o.upstream, audience(i), i)
	}
	if o.grpcUpstream != "" {
		fmt.Fprintf(&b, "  - name: grpc\n    path_prefix: %s\n    upstream: %q\n    audience: %q\n    timeout: 5s\n",
			grpcPrefix, "h2c://"+strings.TrimPrefix(o.grpcUpstream, "http://"), audience(0))
	}
	return b.String()
}

// startTokengate writes a key and a configuration into o.dir and runs
// `tokengate serve` until its /readyz answers 200.
func startTokengate(o tokengateOptions) (*target, error) {
	pemBytes, err := keys.GenerateKeyPEM("ES256", rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.dir, "es256.pem"), pemBytes, 0o600); err != nil {
		return nil, err
	}
	edge, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if o.authz, err = freeAddr(); err != nil {
		return nil, err
	}
	path := filepath.Join(o.dir, "tokengate.yaml")
	if err := os.WriteFile(path, []byte(configText(o, edge, admin)), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(o.binary, "serve", "--config", path)
	logs, err := os.Create(filepath.Join(o.dir, "tokengate.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		logs.Close()
		return nil, fmt.Errorf("start tokengate: %w", err)
	}
	t := &target{name: "tokengate", url: "http://" + edge, authzURL: "http://" + o.authz, cmd: cmd, stop: func() { logs.Close() }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/readyz", nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return t, nil
			}
		}
		select {
		case <-ctx.Done():
			t.close()
			log, _ := os.ReadFile(filepath.Join(o.dir, "tokengate.log"))
			return nil, fmt.Errorf("tokengate not ready within 30s: %w\n%s", errors.Join(err, ctx.Err()), log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freeAddr finds a free loopback port (tokengate binds it right after).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// buildTokengate compiles ./cmd/tokengate into dir.
func buildTokengate(dir string) (string, error) {
	out := filepath.Join(dir, "tokengate")
	gobin, err := exec.LookPath("go")
	if err != nil {
		// Not on PATH (make may run a Go named by $(GO)): the toolchain
		// named by GOROOT, as `go env` reports it to the programs it runs.
		root := os.Getenv("GOROOT")
		if root == "" {
			return "", errors.New("go build tokengate: no go on PATH and GOROOT is not set")
		}
		gobin = filepath.Join(root, "bin", "go")
	}
	cmd := exec.Command(gobin, "build", "-o", out, "github.com/tokengate/tokengate/cmd/tokengate")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build tokengate: %w", err)
	}
	return out, nil
}
