package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// TestForwardedRequest checks what the upstream receives: the exchanged
// token and never the umbrella one, fresh X-Forwarded-*, no spoofable
// forwarding headers, no hop-by-hop headers, no access_token in the URL.
func TestForwardedRequest(t *testing.T) {
	be := newBackend(t, nil)
	env := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, nil)
	resp, _ := env.do(t, http.MethodGet, "/orders/1?a=1&b=2", func(r *http.Request) {
		bearer(umbrella)(r)
		r.Host = "edge.example.com"
		r.Header.Set("X-Forwarded-For", "6.6.6.6")
		r.Header.Set("X-Forwarded-Host", "evil.example")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("Forwarded", "for=6.6.6.6;host=evil.example;proto=https")
		r.Header.Set("X-Real-Ip", "6.6.6.6")
		r.Header.Set("Connection", "X-Hop")
		r.Header.Set("X-Hop", "secret")
		r.Header.Set("X-App", "kept")
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	reqs := be.requests()
	if len(reqs) != 1 {
		t.Fatalf("backend got %d requests", len(reqs))
	}
	got := reqs[0]
	want := map[string]string{
		"Authorization":     "Bearer " + exchangedToken("https://orders.example.com", []string{"orders:read", "orders:write"}),
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "edge.example.com",
		"X-Forwarded-Proto": "http",
		"Forwarded":         "",
		"X-Real-Ip":         "",
		"X-Hop":             "",
		"X-App":             "kept",
	}
	for k, v := range want {
		if g := strings.Join(got.Header.Values(k), ","); g != v {
			t.Errorf("upstream %s = %q, want %q", k, g, v)
		}
	}
	if got.RequestURI != "/orders/1?a=1&b=2" {
		t.Errorf("upstream RequestURI = %q, want the query kept", got.RequestURI)
	}
	if !strings.HasPrefix(got.Host, "127.0.0.1:") {
		t.Errorf("upstream Host = %q, want the upstream's", got.Host)
	}
	if strings.Contains(got.RequestURI, umbrella) || strings.Contains(fmt.Sprint(got.Header), umbrella) {
		t.Errorf("the umbrella token reached the upstream: %s %v", got.RequestURI, got.Header)
	}
}

func TestRequestID(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Request-Id", "from-upstream") // must not duplicate or replace the gateway's
	})
	env := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, nil)
	tests := []struct {
		name string
		sent []string
		keep bool
	}{
		{name: "kept", sent: []string{"req-123_abc.DEF"}, keep: true},
		{name: "128 chars kept", sent: []string{strings.Repeat("a", 128)}, keep: true},
		{name: "absent", sent: nil},
		{name: "too long", sent: []string{strings.Repeat("a", 129)}},
		{name: "space", sent: []string{"a b"}},
		{name: "non-ASCII", sent: []string{"abcé"}},
		{name: "two values", sent: []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := env.do(t, http.MethodGet, "/orders", func(r *http.Request) {
				bearer(umbrella)(r)
				for _, v := range tc.sent {
					r.Header.Add("X-Request-Id", v)
				}
			})
			reqs := be.requests()
			up := reqs[len(reqs)-1].Header.Values("X-Request-Id")
			down := resp.Header.Values("X-Request-Id")
			if len(up) != 1 || len(down) != 1 || up[0] != down[0] {
				t.Fatalf("upstream %q, response %q: want one and the same id", up, down)
			}
			if tc.keep && up[0] != tc.sent[0] {
				t.Errorf("id %q, want the client's %q", up[0], tc.sent[0])
			}
			if !tc.keep && (slices.Contains(tc.sent, up[0]) || !saneRequestID(up[0])) {
				t.Errorf("id %q, want a new sane one", up[0])
			}
		})
	}
}

func TestStripAccessToken(t *testing.T) {
	for in, want := range map[string]string{
		"":                                  "",
		"a=1":                               "a=1",
		"access_token=x":                    "",
		"a=1&access_token=x&b=%20":          "a=1&b=%20",
		"access%5Ftoken=x&b=2":              "b=2",
		"ACCESS_TOKEN=x":                    "ACCESS_TOKEN=x", // another parameter
		"access_token":                      "",
		"x=access_token":                    "x=access_token",
		"a=1&access_token=1&access_token=2": "a=1",
		"bad%zz=1&a=2":                      "a=2",
	} {
		if got := stripAccessToken(in); got != want {
			t.Errorf("stripAccessToken(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUpstream401Invalidates: the upstream refusing the exchanged token
// drops it from the exchanger's cache.
func TestUpstream401Invalidates(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	env := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, nil)
	resp, _ := env.do(t, http.MethodGet, "/orders", bearer(umbrella))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want the upstream's 401", resp.StatusCode)
	}
	reqs, inval := env.exch.snapshot()
	if len(inval) != 1 {
		t.Fatalf("Invalidate called %d times, want 1", len(inval))
	}
	if inval[0].Audience != reqs[0].Audience || !slices.Equal(inval[0].Scopes, reqs[0].Scopes) || inval[0].Subject != reqs[0].Subject {
		t.Errorf("invalidated %+v, want the exchanged request %+v", inval[0], reqs[0])
	}

	ok := newBackend(t, nil)
	env2 := newEnv(t, []config.Route{testRoute("orders", "/orders", ok.URL)}, nil)
	env2.do(t, http.MethodGet, "/orders", bearer(umbrella))
	if _, inval := env2.exch.snapshot(); len(inval) != 0 {
		t.Errorf("Invalidate called on a 200")
	}
}

func TestDownscoping(t *testing.T) {
	be := newBackend(t, nil)
	r := testRoute("orders", "/orders", be.URL)
	r.Scopes = []string{"orders:write", "orders:read", "orders:admin"}
	env := newEnv(t, []config.Route{r}, nil)
	env.verifier.add("tok-few-scopes-0123", func(c *exchange.Claims) { c.Scopes = []string{"billing:read"} })
	tests := []struct {
		tok  string
		want []string
	}{
		// umbrella scopes: orders:write billing:read orders:read orders:write admin:all
		{tok: umbrella, want: []string{"orders:read", "orders:write"}},
		{tok: "tok-few-scopes-0123", want: nil},
	}
	for _, tc := range tests {
		env.do(t, http.MethodGet, "/orders", bearer(tc.tok))
		reqs, _ := env.exch.snapshot()
		last := reqs[len(reqs)-1]
		if !slices.Equal(last.Scopes, tc.want) || last.Audience != "https://orders.example.com" {
			t.Errorf("exchange request scopes %q audience %q, want %q", last.Scopes, last.Audience, tc.want)
		}
	}
}

// TestStreaming: the client sees the first chunk before the backend writes
// the second.
func TestStreaming(t *testing.T) {
	next := make(chan struct{})
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "second\n")
	})
	env := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, nil)
	req, _ := http.NewRequest(http.MethodGet, env.edge.URL+"/orders/stream", nil)
	bearer(umbrella)(req)
	resp, err := env.edge.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)

	line := make(chan string, 1)
	go func() {
		l, _ := br.ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "first\n" {
			t.Fatalf("first chunk %q", l)
		}
	case <-time.After(10 * time.Second): // a guard against a hang, not a wait
		close(next)
		t.Fatal("the first chunk did not arrive before the second was written: the proxy buffers")
	}
	close(next)
	rest, _ := io.ReadAll(br)
	if string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

// TestWebSocket: an Upgrade passes through; the backend hijacks and echoes.
func TestWebSocket(t *testing.T) {
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(conn, brw) // echo until the client closes
	})
	env := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, nil)

	conn, err := net.Dial("tcp", env.edge.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(http.MethodGet, env.edge.URL+"/orders/ws", nil)
	bearer(umbrella)(req)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if _, err := io.WriteString(conn, "ping-pong"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("ping-pong"))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping-pong" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	reqs := be.requests()
	if len(reqs) != 1 || !strings.HasPrefix(reqs[0].Header.Get("Authorization"), "Bearer xt.") {
		t.Errorf("upgrade forwarded with %v", reqs)
	}
}
