package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// e2eSTS is an RFC 8693 STS over HTTP: it checks tokengate's client
// credentials and the request, and answers per audience: an opaque token,
// or the error set for that audience. gate, when set, holds every answer
// until closed.
type e2eSTS struct {
	*oauthtest.STS

	mu   sync.Mutex
	errs map[string][2]any // audience → {status, error code}
	gate chan struct{}
}

const (
	e2eSTSClient = "tokengate"
	e2eSTSSecret = "sts-secret-value"
)

func newE2ESTS(t testing.TB) *e2eSTS {
	t.Helper()
	s := &e2eSTS{errs: map[string][2]any{}}
	s.STS = oauthtest.NewSTS(t, s.answer)
	return s
}

// answer is the token endpoint: client credentials, the request, then the
// audience's token or error.
func (s *e2eSTS) answer(w http.ResponseWriter, r *http.Request, n int) {
	s.mu.Lock()
	gate := s.gate
	failure, failing := s.errs[r.PostForm.Get("audience")]
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if id, secret, ok := r.BasicAuth(); !ok || id != e2eSTSClient || secret != e2eSTSSecret {
		writeJSONTest(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	if r.PostForm.Get("grant_type") != oauthtest.GrantTokenExchange || r.PostForm.Get("subject_token") == "" {
		writeJSONTest(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	if failing {
		writeJSONTest(w, failure[0].(int), map[string]string{"error": failure[1].(string)})
		return
	}
	res := oauthtest.TokenResponse(fmt.Sprintf("sts-token-%d-for-%s", n, r.PostForm.Get("audience")), 120)
	res["scope"] = r.PostForm.Get("scope")
	writeJSONTest(w, 200, res)
}

func (s *e2eSTS) fail(audience string, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs[audience] = [2]any{status, code}
}

func writeJSONTest(w http.ResponseWriter, status int, v any) { oauthtest.JSON(w, status, v) }

// e2eRemoteConfig is e2eConfig's routes in remote mode; %[n] filled by startRemoteE2E.
const e2eRemoteConfig = `server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
log:
  level: debug
issuers:
  - issuer: %[1]q
    jwks_uri: %[2]q
    algorithms: [ES256]
exchange:
  mode: remote
  token_ttl: 5m
  remote:
%[3]s
    client_id: tokengate
    client_secret: ${TOKENGATE_TEST_STS_SECRET}
    timeout: 2s
routes:
  - name: orders
    path_prefix: /orders
    upstream: %[4]q
    audience: %[6]q
    scopes: [orders:read, orders:write]
  - name: inventory
    path_prefix: /inventory
    upstream: %[5]q
    audience: %[7]q
    scopes: [inventory:read]
`

// startRemoteE2E starts tokengate in remote mode against sts; endpoint is
// the exchange.remote line naming it (token_endpoint or issuer).
func startRemoteE2E(t *testing.T, idp *e2eIdP, sts *e2eSTS, endpoint string, orders, inventory *e2eBackend) *e2eGateway {
	t.Helper()
	return startRemoteE2EWith(t, idp, endpoint, orders, inventory, nil)
}

// startRemoteE2EWith is startRemoteE2E with edit applied to the
// configuration text first (nil: none).
func startRemoteE2EWith(t *testing.T, idp *e2eIdP, endpoint string, orders, inventory *e2eBackend, edit func(string) string) *e2eGateway {
	t.Helper()
	t.Setenv("TOKENGATE_TEST_STS_SECRET", e2eSTSSecret)
	dir := t.TempDir()
	text := fmt.Sprintf(e2eRemoteConfig, idp.URL(), idp.URL()+"/jwks.json", "    "+endpoint,
		orders.srv.URL, inventory.srv.URL, audOrders, audInventory)
	if edit != nil {
		text = edit(text)
	}
	path := filepath.Join(dir, "tokengate.yaml")
	writeFile(t, path, []byte(text))
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	edgeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv, err := startServer(context.Background(), serverOptions{
		ConfigPath: path, Config: cfg, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		EdgeListener: edgeLn, AdminListener: adminLn,
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return &e2eGateway{srv: srv, dir: dir, path: path, logs: logs, cfgText: text}
}

// TestE2ERemoteConcurrentFirstRequestsOneSTSCall: 200 concurrent first
// requests through the real gateway make exactly one STS call, and the
// backend receives the STS's token, never the umbrella token.
func TestE2ERemoteConcurrentFirstRequestsOneSTSCall(t *testing.T) {
	idp, sts := newE2EIdP(t), newE2ESTS(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startRemoteE2E(t, idp, sts, fmt.Sprintf("token_endpoint: %q", sts.TokenURL()), orders, inventory)
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": []string{audOrders, audInventory}, "scope": "orders:read inventory:read admin"})

	gate := make(chan struct{})
	sts.mu.Lock()
	sts.gate = gate
	sts.mu.Unlock()
	const n = 200
	wait := burst(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}, g.srv.EdgeURL()+"/orders", repeat(umbrella, n))
	// Hold the STS until the first exchange arrives; every other request is
	// then waiting for that same flight or has not been verified yet.
	waitFor(t, func() bool { return len(sts.Calls()) >= 1 })
	close(gate)
	for _, c := range wait() {
		if c != 200 {
			t.Fatalf("a concurrent request got %d", c)
		}
	}
	if calls := len(sts.Calls()); calls != 1 {
		t.Fatalf("%d concurrent first requests made %d STS calls, want 1", n, calls)
	}
	if got := testutil.ToFloat64(g.srv.proc.ExchangeMetrics.Exchanges.WithLabelValues(audOrders, "remote", "ok")); got != 1 {
		t.Errorf("exchanges{remote,ok} = %v, want 1", got)
	}
	reqs := orders.received()
	if len(reqs) != n {
		t.Fatalf("backend received %d requests", len(reqs))
	}
	for _, r := range reqs {
		if got := bearerOf(r); got != "sts-token-1-for-"+audOrders {
			t.Fatalf("backend got %q, want the STS's token", got)
		}
	}
	form := sts.Calls()[0].Form
	if form["audience"][0] != audOrders || form["scope"][0] != "orders:read" || form["subject_token"][0] != umbrella {
		t.Errorf("STS request form = audience %q scope %q", form["audience"], form["scope"])
	}
	assertNoUmbrella(t, umbrella, g, orders, inventory)

	// Remote mode publishes no local keys.
	for _, p := range []string{"/.well-known/jwks.json", "/.well-known/openid-configuration"} {
		if resp, _ := get(t, g.srv.AdminURL()+p); resp.StatusCode != 404 {
			t.Errorf("admin %s = %d in remote mode, want 404", p, resp.StatusCode)
		}
	}
	if resp, body := get(t, g.srv.AdminURL()+"/readyz"); resp.StatusCode != 200 {
		t.Errorf("readyz = %d %s", resp.StatusCode, body)
	}
}

// TestE2ERemoteSTSErrors: what the STS answers decides what the client
// gets, and no failure reaches a backend.
func TestE2ERemoteSTSErrors(t *testing.T) {
	idp, sts := newE2EIdP(t), newE2ESTS(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startRemoteE2E(t, idp, sts, fmt.Sprintf("token_endpoint: %q", sts.TokenURL()), orders, inventory)
	tests := []struct {
		status     int
		code       string
		want       int
		challenge  string
		retryAfter bool
	}{
		{400, "invalid_grant", 401, `Bearer error="invalid_token"`, false},
		{400, "invalid_target", 403, `Bearer error="insufficient_scope"`, false},
		{400, "invalid_scope", 403, `Bearer error="insufficient_scope"`, false},
		{401, "invalid_client", 503, "", true},
		{503, "temporarily_unavailable", 503, "", true},
	}
	for i, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			sts.fail(audOrders, tt.status, tt.code)
			// A new umbrella token each time: a new cache key.
			umbrella := idp.mint(t, map[string]any{"sub": fmt.Sprintf("u%d", i), "aud": audOrders, "scope": "orders:read"})
			resp, body := g.get(t, "/orders", umbrella)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.want)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, tt.challenge) || (tt.challenge == "") != (got == "") {
				t.Errorf("WWW-Authenticate %q, want prefix %q", got, tt.challenge)
			}
			if (resp.Header.Get("Retry-After") != "") != tt.retryAfter {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
			if strings.Contains(body, umbrella) {
				t.Error("the response echoes the umbrella token")
			}
			assertNoUmbrella(t, umbrella, g, orders, inventory)
		})
	}
	if len(orders.received()) != 0 {
		t.Errorf("the backend received %d requests for failed exchanges", len(orders.received()))
	}
	// The same gateway still serves the other audience.
	umbrella := idp.mint(t, map[string]any{"sub": "ok", "aud": audInventory, "scope": "inventory:read"})
	if resp, body := g.get(t, "/inventory", umbrella); resp.StatusCode != 200 {
		t.Fatalf("inventory: %d %s", resp.StatusCode, body)
	}
	for result, want := range map[string]float64{"rejected": 3, "unavailable": 1, "sts_config_error": 1} {
		if got := testutil.ToFloat64(g.srv.proc.ExchangeMetrics.Exchanges.WithLabelValues(audOrders, "remote", result)); got != want {
			t.Errorf("exchanges{remote,%s} = %v, want %v", result, got, want)
		}
	}
}

// TestE2ERemoteDiscoveryReadiness: with exchange.remote.issuer, /readyz
// requires the STS's metadata, and exchanges use the token endpoint it
// names. (The STS coming back later is exchange's TestRemoteDiscoveryCachedAndRateLimited.)
func TestE2ERemoteDiscoveryReadiness(t *testing.T) {
	for _, down := range []bool{true, false} {
		t.Run(fmt.Sprintf("metadata down %v", down), func(t *testing.T) {
			idp, sts := newE2EIdP(t), newE2ESTS(t)
			sts.SetMetadataDown(down)
			orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
			g := startRemoteE2E(t, idp, sts, fmt.Sprintf("issuer: %q", sts.URL()), orders, inventory)
			umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
			ready, _ := get(t, g.srv.AdminURL()+"/readyz")
			resp, body := g.get(t, "/orders", umbrella)
			if down {
				if _, rbody := get(t, g.srv.AdminURL()+"/readyz"); ready.StatusCode != 503 || !strings.Contains(rbody, "sts_metadata") {
					t.Errorf("readyz = %d %s, want 503 naming sts_metadata", ready.StatusCode, rbody)
				}
				if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
					t.Errorf("exchange without a token endpoint: %d, want 503 with Retry-After", resp.StatusCode)
				}
				if len(sts.Calls()) != 0 || len(orders.received()) != 0 {
					t.Error("a request went on without a token endpoint")
				}
				return
			}
			if ready.StatusCode != 200 || resp.StatusCode != 200 {
				t.Fatalf("readyz %d, request %d %s", ready.StatusCode, resp.StatusCode, body)
			}
			if len(sts.Calls()) != 1 {
				t.Errorf("%d calls at the discovered token endpoint, want 1", len(sts.Calls()))
			}
		})
	}
}
