package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/logtest"
)

// testNow is the injected clock of every test gateway.
var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// umbrella is a JWT-shaped umbrella token; tests assert it never reaches an
// upstream or a response.
const umbrella = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXVtYnJlbGxh"

// tokenFor makes a verified token with claims c.
func tokenFor(raw string, c exchange.Claims) *exchange.Token {
	return exchange.NewToken(raw, sha256.Sum256([]byte(raw)), c, "")
}

// goodClaims pass every route policy used in the tests.
func goodClaims() exchange.Claims {
	return exchange.Claims{
		Issuer:   "https://idp.example.com/",
		Subject:  "alice-subject",
		ClientID: "web",
		Scopes:   []string{"orders:write", "billing:read", "orders:read", "orders:write", "admin:all"},
		ACR:      "silver",
		AuthTime: testNow.Add(-time.Minute),
		Expiry:   testNow.Add(time.Hour),
	}
}

// fakeVerifier returns a token or an error per raw token and counts calls.
type fakeVerifier struct {
	mu        sync.Mutex
	tokens    map[string]*exchange.Token
	errs      map[string]error
	calls     atomic.Int64
	audiences []string
}

func newFakeVerifier() *fakeVerifier {
	v := &fakeVerifier{tokens: map[string]*exchange.Token{}, errs: map[string]error{}}
	v.tokens[umbrella] = tokenFor(umbrella, goodClaims())
	return v
}

func (v *fakeVerifier) add(raw string, edit func(*exchange.Claims)) {
	c := goodClaims()
	if edit != nil {
		edit(&c)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tokens[raw] = tokenFor(raw, c)
}

func (v *fakeVerifier) fail(raw string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs[raw] = err
}

func (v *fakeVerifier) Verify(_ context.Context, raw, audience string) (*exchange.Token, error) {
	v.calls.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.audiences = append(v.audiences, audience)
	if err, ok := v.errs[raw]; ok {
		return nil, err
	}
	if t, ok := v.tokens[raw]; ok {
		return t, nil
	}
	return nil, exchange.Reject(exchange.ReasonSignature, "the signature does not verify", nil)
}

// fakeExchanger returns "xt." + audience + "." + scopes, or the error set
// for a subject, and records requests and invalidations.
type fakeExchanger struct {
	mu          sync.Mutex
	errs        map[string]error // by Claims.Subject
	requests    []exchange.Request
	invalidated []exchange.Request
}

func newFakeExchanger() *fakeExchanger { return &fakeExchanger{errs: map[string]error{}} }

func exchangedToken(audience string, scopes []string) string {
	a := strings.NewReplacer("https://", "", "/", "_").Replace(audience)
	return "xt." + a + "." + strings.Join(scopes, "+")
}

func (e *fakeExchanger) Exchange(_ context.Context, req exchange.Request) (*exchange.Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = append(e.requests, req)
	if err, ok := e.errs[req.Subject.Claims.Subject]; ok {
		return nil, err
	}
	return &exchange.Result{
		AccessToken: exchangedToken(req.Audience, req.Scopes),
		TokenType:   "Bearer",
		Scope:       strings.Join(req.Scopes, " "),
		ExpiresAt:   testNow.Add(5 * time.Minute),
	}, nil
}

func (e *fakeExchanger) Invalidate(_ context.Context, req exchange.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.invalidated = append(e.invalidated, req)
}

func (e *fakeExchanger) snapshot() (reqs, inval []exchange.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.requests), slices.Clone(e.invalidated)
}

// received is what a recording backend saw.
type received struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
}

// backend is an httptest upstream that records every request.
type backend struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	next http.HandlerFunc // optional response; default 200 "upstream ok"
}

func newBackend(t testing.TB, next http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{next: next}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.got = append(b.got, received{r.Method, r.RequestURI, r.Host, r.Header.Clone()})
		b.mu.Unlock()
		if b.next != nil {
			b.next(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "upstream ok")
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) requests() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// testEnv is a gateway behind an httptest server with its fakes.
type testEnv struct {
	gw       *Gateway
	edge     *httptest.Server
	verifier *fakeVerifier
	exch     *fakeExchanger
	metrics  *Metrics
	reg      *prometheus.Registry
	logs     *syncBuffer
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer = logtest.Buffer

func newEnv(t testing.TB, routes []config.Route, edit func(*Options)) *testEnv {
	t.Helper()
	env := &testEnv{
		verifier: newFakeVerifier(),
		exch:     newFakeExchanger(),
		reg:      prometheus.NewRegistry(),
		logs:     &syncBuffer{},
	}
	env.metrics = NewMetrics(env.reg)
	opts := Options{
		// Listen is the address httptest serves on: the DPoP htu is built
		// from it (port 0: the port the connection arrived on).
		Config:    &config.Config{Server: config.Server{MaxTokenBytes: 8192, Listen: "127.0.0.1:0"}, Routes: routes},
		Verifier:  env.verifier,
		Exchanger: env.exch,
		Logger:    slog.New(slog.NewJSONHandler(env.logs, nil)),
		Metrics:   env.metrics,
		Clock:     func() time.Time { return testNow },
	}
	if edit != nil {
		edit(&opts)
	}
	gw, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.gw = gw
	env.edge = httptest.NewServer(gw)
	t.Cleanup(func() {
		env.edge.Close()
		gw.Close()
	})
	return env
}

// do sends a request to the edge; mod adjusts it.
func (env *testEnv) do(t testing.TB, method, target string, mod func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, env.edge.URL+target, nil)
	if err != nil {
		t.Fatalf("NewRequest %s: %v", target, err)
	}
	if mod != nil {
		mod(req)
	}
	resp, err := env.edge.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// route is a config.Route with the fields most tests need.
func testRoute(name, prefix, upstream string) config.Route {
	return config.Route{
		Name:       name,
		PathPrefix: prefix,
		Upstream:   upstream,
		Audience:   "https://" + name + ".example.com",
		Scopes:     []string{name + ":read", name + ":write"},
		Timeout:    config.Duration(5 * time.Second),
	}
}

// decodeError parses a gateway error body.
func decodeError(t testing.TB, body []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return e
}

// closedURL is the URL of a server that no longer listens.
func closedURL(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	u := s.URL
	s.Close()
	return u
}

var errBoom = errors.New("boom")

// newRequest builds an edge request for calling ServeHTTP directly.
func newRequest(t testing.TB, ctx context.Context, target, tok string) *http.Request {
	t.Helper()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://gateway.test"+target, nil)
	req.RemoteAddr = "192.0.2.1:40000"
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return req
}

// discardWriter is a minimal, reusable ResponseWriter.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(b)
	return len(b), nil
}
func (w *discardWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}
