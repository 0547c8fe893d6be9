package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The edge hardening rules (docs/edge.md, SECURITY.md "Path rules" and
// "Body limits") through the real server: an open-ish /api route and a
// stricter /api/admin route (allowed_clients) under it.

const (
	audAPI           = "https://api.example.com"
	edgeBodyTimeout  = 200 * time.Millisecond
	edgeClientOpen   = "web"
	edgeClientStrict = "ops-console"
)

// recorder is a backend that reads every request body to its end and
// records what it saw, including a body cut off by an aborted request.
type recorder struct {
	mu   sync.Mutex
	seen []recorded
	addr string
}

type recorded struct {
	path    string
	bodyErr error
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		rec.mu.Lock()
		rec.seen = append(rec.seen, recorded{path: r.URL.RawPath + "|" + r.URL.Path, bodyErr: err})
		rec.mu.Unlock()
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	rec.addr = srv.URL
	return rec
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.seen...)
}

type edgeWorld struct {
	g          *e2eGateway
	api, admin *recorder
	token      string // an umbrella token for audAPI of the open client
}

func startEdgeWorld(t *testing.T) *edgeWorld {
	t.Helper()
	idp := newE2EIdP(t)
	w := &edgeWorld{api: newRecorder(t), admin: newRecorder(t)}
	routes := fmt.Sprintf(`  - name: api
    path_prefix: /api
    upstream: %q
    audience: %q
    timeout: 5s
  - name: apiadmin
    path_prefix: /api/admin
    upstream: %q
    audience: %q
    allowed_clients: [%s]
    timeout: 5s
`, w.api.addr, audAPI, w.admin.addr, audAPI, edgeClientStrict)
	w.g = startE2EWith(t, idp, newE2EBackend(t, "orders"), newE2EBackend(t, "inventory"), e2eOptions{
		edit: func(text, _ string) string {
			text = strings.Replace(text, "  shutdown_grace: 10s\n",
				"  shutdown_grace: 10s\n  body_timeout: "+edgeBodyTimeout.String()+"\n", 1)
			return text + routes
		},
	})
	w.token = idp.mint(t, map[string]any{"aud": audAPI, "sub": "alice", "client_id": edgeClientOpen})
	return w
}

func (w *edgeWorld) addr() string { return strings.TrimPrefix(w.g.srv.EdgeURL(), "http://") }

// dial opens a raw connection to the edge; its deadline is a safety net
// for a broken gateway, never a wait.
func (w *edgeWorld) dial(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", w.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn
}

// roundTrip writes raw bytes and reads one response; the body is returned
// and the connection's reader is left for further reads.
func roundTrip(t *testing.T, conn net.Conn, raw string) (*http.Response, []byte, *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, br
}

func errorCode(t *testing.T, body []byte) (code, desc string) {
	t.Helper()
	var eb struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return eb.Error, eb.Description
}

func (w *edgeWorld) backendHits() int { return len(w.api.requests()) + len(w.admin.requests()) }

// TestAdversarialEdgePathConfusion: every spelling a backend could read as
// the stricter /api/admin (or the token endpoint) is 400 invalid_request
// before any route; neither backend is reached.
func TestAdversarialEdgePathConfusion(t *testing.T) {
	w := startEdgeWorld(t)
	spellings := []string{
		"/api/admin;x=1", "/api/admin;jsessionid=1/users", "/api;/admin/users", "/api/admin%3Bx=1",
		"/API/admin", "/Api/Admin/users", "/api/ADMIN/users",
		"/api/admin./users", "/api/admin../users", "/api/admin%2e/users", "/api/admin%2E%2E/users",
		"/api/admin%20/users",
		"/api/admin%2Fusers", "/api%2Fadmin/users", "/api%2fadmin/users",
		"/api/admin%252Fusers", "/api/x/%252e%252e/admin", "/api/x/%25%32%65%25%32%65/admin",
		`/api\admin/users`, "/api%5Cadmin/users", "/api%5cadmin/users",
		"/api/admin%00/users",
		"/nothing;x=1", "/nothing%2Fhere",
		"/OAUTH2/token", "/oauth2/token.", "/oauth2/token;x=1",
	}
	for _, p := range spellings {
		t.Run(p, func(t *testing.T) {
			before := w.backendHits()
			resp, body, _ := roundTrip(t, w.dial(t), "GET "+p+" HTTP/1.1\r\nHost: Edge.Example.\r\n"+
				"Authorization: Bearer "+w.token+"\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (body %s)", resp.StatusCode, body)
			}
			code, desc := errorCode(t, body)
			if code != "invalid_request" || desc == "" {
				t.Errorf("body %s, want invalid_request with a description", body)
			}
			if strings.Contains(desc, "users") || strings.Contains(desc, "jsessionid") || strings.Contains(string(body), w.token) {
				t.Errorf("the description echoes the request: %s", body)
			}
			if w.backendHits() != before {
				t.Error("a confused path reached a backend")
			}
		})
	}
	// The routes still work as written: the open route serves, the strict
	// route enforces its allowed_clients.
	resp, body := w.g.get(t, "/api/items", w.token)
	if resp.StatusCode != http.StatusOK || len(w.api.requests()) != 1 {
		t.Fatalf("/api/items: status %d (body %s), want 200 from the api backend", resp.StatusCode, body)
	}
	resp, body = w.g.get(t, "/api/admin/users", w.token)
	if resp.StatusCode != http.StatusForbidden || len(w.admin.requests()) != 0 {
		t.Fatalf("/api/admin/users: status %d (body %s), want 403 from allowed_clients", resp.StatusCode, body)
	}
	m := scrape(t, w.g)
	if got := m[series("tokengate_token_rejections_total", map[string]string{"reason": "path"})]; got != float64(len(spellings)) {
		t.Errorf("path rejections = %v, want %d", got, len(spellings))
	}
	assertNoUmbrella(t, w.token, w.g)
}

// TestAdversarialEdgeSlowBody: a client that sends the token endpoint its
// headers and then nothing is answered 408 within body_timeout and its
// connection closed.
func TestAdversarialEdgeSlowBody(t *testing.T) {
	w := startEdgeWorld(t)
	conn := w.dial(t)
	start := time.Now()
	resp, body, br := roundTrip(t, conn, "POST /oauth2/token HTTP/1.1\r\nHost: edge\r\n"+
		"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4096\r\n\r\ngrant_type=")
	elapsed := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408 (body %s)", resp.StatusCode, body)
	}
	if code, _ := errorCode(t, body); code != "invalid_request" {
		t.Errorf("error %q, want invalid_request", code)
	}
	if elapsed < edgeBodyTimeout || elapsed > edgeBodyTimeout+5*time.Second {
		t.Errorf("cut off after %v, want about body_timeout (%v)", elapsed, edgeBodyTimeout)
	}
	// The gateway has let go of the connection: the next read ends.
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("after the 408, read = %v, want the connection closed", err)
	}
}

// TestAdversarialEdgeBodyTooLarge: 65 KiB to the token endpoint is 413,
// whether announced by Content-Length or sent chunked.
func TestAdversarialEdgeBodyTooLarge(t *testing.T) {
	w := startEdgeWorld(t)
	big := "grant_type=x&pad=" + strings.Repeat("a", 65<<10)
	head := "POST /oauth2/token HTTP/1.1\r\nHost: edge\r\nContent-Type: application/x-www-form-urlencoded\r\n"
	for name, raw := range map[string]string{
		"content-length": head + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(big)) + big,
		"chunked":        head + "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(big), big),
	} {
		t.Run(name, func(t *testing.T) {
			resp, body, _ := roundTrip(t, w.dial(t), raw)
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413 (body %s)", resp.StatusCode, body)
			}
			if code, _ := errorCode(t, body); code != "invalid_request" || !resp.Close {
				t.Errorf("error %q, close %v: want invalid_request and the connection closed", code, resp.Close)
			}
		})
	}
}

// TestAdversarialEdgeMalformedChunked: a broken chunked body on a proxied
// route is the client's 400, counted as a rejection (reason body), never a
// 502; the backend sees nothing, or an aborted request.
func TestAdversarialEdgeMalformedChunked(t *testing.T) {
	w := startEdgeWorld(t)
	resp, body, _ := roundTrip(t, w.dial(t), "POST /api/upload HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer "+w.token+
		"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nnot-a-size\r\nabc\r\n0\r\n\r\n")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400 (body %s)", resp.StatusCode, body)
	}
	if code, _ := errorCode(t, body); code != "invalid_request" {
		t.Errorf("error %q, want invalid_request", code)
	}
	for _, r := range w.api.requests() {
		if r.bodyErr == nil {
			t.Errorf("the backend received a complete request (%s): it should see nothing or an aborted one", r.path)
		}
	}
	m := scrape(t, w.g)
	if got := m[series("tokengate_token_rejections_total", map[string]string{"reason": "body"})]; got != 1 {
		t.Errorf("body rejections = %v, want 1", got)
	}
	if got := m[series("tokengate_requests_total", map[string]string{"route": "api", "code": "400"})]; got != 1 {
		t.Errorf("api 400s = %v, want 1", got)
	}
	if got := m[series("tokengate_requests_total", map[string]string{"route": "api", "code": "502"})]; got != 0 {
		t.Errorf("api 502s = %v, want 0", got)
	}
	if logs := w.g.logs.String(); !strings.Contains(logs, `"reason":"body"`) {
		t.Error("the access log does not name the rejection reason body")
	}
}

// TestAdversarialEdgeTokenPlacement: RFC 6750 section 3.1 and the WebSocket
// subprotocol: a token anywhere but Authorization is refused, never
// forwarded.
func TestAdversarialEdgeTokenPlacement(t *testing.T) {
	w := startEdgeWorld(t)
	tests := []struct {
		name, target string
		auth         bool
		header       map[string]string
		status       int
		www          string
	}{
		{"header and query", "/api/items?access_token=" + w.token, true, nil, 400, `Bearer error="invalid_request"`},
		{"header and encoded query key", "/api/items?a=1&access%5Ftoken=" + w.token, true, nil, 400, `Bearer error="invalid_request"`},
		{"query alone", "/api/items?access_token=" + w.token, false, nil, 401, `Bearer realm="tokengate"`},
		{"token endpoint query", "/oauth2/token?access_token=" + w.token, false, nil, 400, ""},
		{"token as a WebSocket subprotocol", "/api/socket", true, map[string]string{
			"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
			"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "access_token, " + w.token,
		}, 400, `Bearer error="invalid_request"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := w.backendHits()
			method := http.MethodGet
			if strings.HasPrefix(tc.target, "/oauth2/token") {
				method = http.MethodPost
			}
			token := ""
			if tc.auth {
				token = w.token
			}
			resp, body := sendWith(t, method, w.g.srv.EdgeURL()+tc.target, token, tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.www {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.www)
			}
			if code, _ := errorCode(t, []byte(body)); tc.status == 400 && code != "invalid_request" {
				t.Errorf("error %q, want invalid_request", code)
			}
			if strings.Contains(body, w.token) {
				t.Error("the response echoes the token")
			}
			if w.backendHits() != before {
				t.Error("the request reached a backend")
			}
		})
	}
	assertNoUmbrella(t, w.token, w.g)
}
