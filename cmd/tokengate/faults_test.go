package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// Fault tests: dependencies that die, hang or answer garbage, and hostile
// clients, against the real server. Each is bounded to a few seconds.

// TestFaultUpstream: an upstream that refuses connections is 502, one that
// hangs is 504 at the route's timeout; neither leaks the umbrella token.
func TestFaultUpstream(t *testing.T) {
	idp := newE2EIdP(t)
	release := make(chan struct{})
	hanging := &e2eBackend{name: "orders"}
	hanging.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hanging.srv.Close)
	t.Cleanup(func() { close(release) }) // runs before the server closes
	refused := newE2EBackend(t, "inventory")
	refused.srv.Close() // its port now refuses connections
	const routeTimeout = 300 * time.Millisecond
	g := startE2EWith(t, idp, hanging, refused, e2eOptions{edit: func(text, _ string) string {
		return strings.Replace(text, "timeout: 5s", "timeout: 300ms", 1) // the orders route
	}})

	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": []string{audOrders, audInventory}, "scope": "orders:read inventory:read"})
	resp, body := g.get(t, "/inventory", umbrella)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("refused upstream: %d %q %s, want 502 without a challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	start := time.Now()
	resp, body = g.get(t, "/orders", umbrella)
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("hanging upstream: %d %s, want 504", resp.StatusCode, body)
	}
	if elapsed < routeTimeout || elapsed > routeTimeout+3*time.Second {
		t.Errorf("the 504 came after %v; want about the route timeout %v", elapsed, routeTimeout)
	}
	assertNoUmbrella(t, umbrella, g)
}

// TestFaultSTS: an STS that fails, hangs or answers garbage is a 503 with
// Retry-After within the exchange timeout (2s), and nothing is forwarded.
func TestFaultSTS(t *testing.T) {
	var mode atomic.Value
	var calls atomic.Int32
	mode.Store("500")
	sts := oauthtest.NewSTS(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		calls.Add(1)
		switch mode.Load() {
		case "500":
			http.Error(w, "internal error", http.StatusInternalServerError)
		case "hang":
			// oauthtest has read the form: the server notices the client
			// hanging up (and cancels r.Context) only once the body is consumed.
			<-r.Context().Done()
		case "garbage":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token": [1,2,3], "token_type": 7`)
		case "html":
			io.WriteString(w, "<html>login page</html>")
		case "huge":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"`)
			for range 64 {
				if _, err := io.WriteString(w, strings.Repeat("a", 64<<10)); err != nil {
					return
				}
			}
		}
	})
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	for i, m := range []string{"500", "hang", "garbage", "html", "huge"} {
		t.Run(m, func(t *testing.T) {
			// A gateway per mode: an open breaker must not hide the case.
			g := startRemoteE2E(t, idp, nil, fmt.Sprintf("token_endpoint: %q", sts.TokenURL()), orders, inventory)
			mode.Store(m)
			calls.Store(0)
			defer func() {
				if calls.Load() == 0 {
					t.Errorf("the STS was never called: the case tested nothing")
				}
			}()
			umbrella := idp.mint(t, map[string]any{"sub": fmt.Sprintf("u%d", i), "aud": audOrders, "scope": "orders:read"})
			start := time.Now()
			resp, body := g.get(t, "/orders", umbrella)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%d (Retry-After %q) %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the 503 took %v; the exchange timeout is 2s", d)
			}
			assertNoUmbrella(t, umbrella, g, orders, inventory)
		})
	}
	if n := len(orders.received()); n != 0 {
		t.Errorf("the backend received %d requests during STS failures", n)
	}
}

// TestFaultRandomKidBurst: a burst of tokens with random kids, after the
// keys are known, makes at most one JWKS fetch per min_refresh_interval.
// Afterwards, with the IdP down, an unknown kid is still refused (401) after
// at most one bounded refresh attempt, and known keys keep working.
func TestFaultRandomKidBurst(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: func(text, _ string) string {
		return strings.Replace(text, "min_refresh_interval: 1s", "min_refresh_interval: 1h", 1)
	}})
	good := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	if resp, body := g.get(t, "/orders", good); resp.StatusCode != 200 {
		t.Fatalf("baseline: %d %s", resp.StatusCode, body)
	}
	atk := newAttacker(t)
	claims := claimsJSON(t, idp.URL(), nil)
	before := idp.JWKSFetches()
	const n = 200
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = craft(t, fmt.Sprintf(`{"alg":"ES256","kid":"random-%d"}`, i), claims, signES256(atk.key))
	}
	for _, c := range burst(&http.Client{Timeout: 10 * time.Second}, g.srv.EdgeURL()+"/orders", tokens)() {
		if c != http.StatusUnauthorized {
			t.Fatalf("a random-kid token got %d, want 401", c)
		}
	}
	if got := idp.JWKSFetches() - before; got > 1 {
		t.Errorf("%d random-kid requests caused %d JWKS fetches; want at most 1 per min_refresh_interval", n, got)
	}

	idp.SetDown(true)
	before = idp.JWKSFetches()
	for i := range 20 {
		tok := craft(t, fmt.Sprintf(`{"alg":"ES256","kid":"down-%d"}`, i), claims, signES256(atk.key))
		if resp, body := g.get(t, "/orders", tok); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unknown kid with the IdP down: %d %s, want 401", resp.StatusCode, body)
		}
	}
	if got := idp.JWKSFetches() - before; got > 1 {
		t.Errorf("unknown kids during an outage caused %d JWKS fetches; want at most 1", got)
	}
	if resp, body := g.get(t, "/orders", good); resp.StatusCode != 200 {
		t.Errorf("a known key during the outage: %d %s", resp.StatusCode, body)
	}
	if len(orders.received()) != 2 {
		t.Errorf("the backend received %d requests, want the 2 valid ones", len(orders.received()))
	}
}

// TestFaultSlowClients: a client that dribbles its headers is cut off at
// server.read_header_timeout; headers over server.max_header_bytes are 431.
func TestFaultSlowClients(t *testing.T) {
	idp := newE2EIdP(t)
	g := startE2EWith(t, idp, newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"), e2eOptions{edit: func(text, _ string) string {
		return strings.Replace(text, "  shutdown_grace: 10s\n", "  shutdown_grace: 10s\n  read_header_timeout: 300ms\n  max_header_bytes: 16384\n", 1)
	}})
	addr := strings.TrimPrefix(g.srv.EdgeURL(), "http://")

	t.Run("slowloris", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, "GET /orders HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		// Dribble a header line every 50ms; the server must close the
		// connection long before the client would ever finish.
		closed := make(chan struct{})
		go func() {
			defer close(closed)
			io.Copy(io.Discard, conn) // returns when the server closes
		}()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		for i := 0; ; i++ {
			select {
			case <-closed:
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("the slow client was cut off after %v; read_header_timeout is 300ms", d)
				}
				return
			case <-deadline:
				t.Fatal("a client dribbling headers kept its connection for 10s")
			case <-tick.C:
				fmt.Fprintf(conn, "X-Slow-%d: a\r\n", i) // errors once closed; the read side reports it
			}
		}
	})

	t.Run("oversized headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /orders HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("b", 64<<10))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("oversized headers: %d, want 431", resp.StatusCode)
		}
	})
}
