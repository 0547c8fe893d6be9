package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestE2EWebSocketThroughTheEdge: with the edge listener speaking HTTP/1.1,
// h2 and h2c, a WebSocket upgrade (HTTP/1.1) still passes through the real
// server to an h1 upstream, and the upstream sees the exchanged token only.
func TestE2EWebSocketThroughTheEdge(t *testing.T) {
	var auth atomic.Value
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		auth.Store(r.Header.Get("Authorization"))
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw) // echo until the client closes
	}))
	t.Cleanup(ws.Close)
	idp := newE2EIdP(t)
	orders := newE2EBackend(t, "orders")
	g := startE2EWith(t, idp, orders, newE2EBackend(t, "inventory"), e2eOptions{
		edit: func(text, _ string) string { return strings.Replace(text, orders.srv.URL, ws.URL, 1) },
	})
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})

	conn, err := net.DialTimeout("tcp", g.srv.edgeAddr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, g.srv.EdgeURL()+"/orders/ws", nil)
	req.Header.Set("Authorization", "Bearer "+umbrella)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
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
	if a, _ := auth.Load().(string); !strings.HasPrefix(a, "Bearer ") || strings.Contains(a, umbrella) {
		t.Errorf("upstream Authorization %q: want the exchanged token", a)
	}
}
