package gateway

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
)

// TestCheckPath: the path rules on the path as the client sent it.
func TestCheckPath(t *testing.T) {
	tests := []struct {
		raw  string
		want error
	}{
		{"/", nil},
		{"/api/admin/users", nil},
		{"/api/a%20b", nil},
		{"/api/100%25off", nil}, // "%" then non-hex: not a double encoding
		{"/api/%2e%2e/x", nil},  // decoded dot segments are cleaned, not refused
		{"/api/x.y/z", nil},
		{"*", nil},
		{"/api/admin;x=1", errPathParam},
		{"/api;/admin", errPathParam},
		{"/api/admin%3Bx=1", errPathParam},
		{"/api/admin%3bx=1", errPathParam},
		{`/api\admin`, errPathBackslash},
		{"/api%5Cadmin", errPathBackslash},
		{"/api%5cadmin", errPathBackslash},
		{"/api/admin%2Fusers", errPathSlash},
		{"/api%2fadmin", errPathSlash},
		{"/api/admin%252Fusers", errPathDouble},
		{"/api/%252e%252e/admin", errPathDouble},
		{"/api/%25%32%46", errPathDouble},
		{"/api/admin%00", errPathControl},
		{"/api/admin%0d%0a", errPathControl},
		{"/api/admin\x7f", errPathControl},
		{"/api/a b", errPathControl},
		{"/api/%zz", errPathEscape},
		{"/api/%4", errPathEscape},
		{"api/admin", errPathStart},
		{"", errPathStart},
	}
	for _, tc := range tests {
		if got := checkPath(tc.raw); got != tc.want {
			t.Errorf("checkPath(%q) = %v, want %v", tc.raw, got, tc.want)
		}
	}
}

func TestRequestPath(t *testing.T) {
	for uri, want := range map[string]string{
		"/a%2Fb?x=1":                "/a%2Fb",
		"/a;b":                      "/a;b",
		"http://h.example/a%2Fb?q":  "/a%2Fb",
		"http://h.example?q=1":      "/",
		"http://h.example":          "/",
		"https://h.example:8443/x/": "/x/",
		"*":                         "*",
		"edge.example:443":          "*", // CONNECT's authority form
	} {
		r := &http.Request{RequestURI: uri, URL: &url.URL{Path: "/ignored"}}
		if got := requestPath(r); got != want {
			t.Errorf("requestPath(%q) = %q, want %q", uri, got, want)
		}
	}
}

// confusionEnv has an open-ish /api route and a stricter /api/admin route
// (allowed_clients), each with its own backend.
func confusionEnv(t *testing.T, edit func(*Options)) (env *testEnv, api, admin *backend) {
	t.Helper()
	api, admin = newBackend(t, nil), newBackend(t, nil)
	strict := testRoute("admin", "/api/admin", admin.URL)
	strict.AllowedClients = []string{"ops-console"}
	env = newEnv(t, []config.Route{testRoute("api", "/api", api.URL), strict}, edit)
	env.verifier.add(umbrella, nil)
	return env, api, admin
}

// sendRaw writes a raw HTTP/1.1 request and reads one response.
func sendRaw(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second)) // a safety net, not a wait
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// TestPathConfusionRefused: every spelling that a backend could read as the
// stricter /api/admin (or the token endpoint), and every path the rules
// refuse, is 400 invalid_request before any route, token or backend.
func TestPathConfusionRefused(t *testing.T) {
	env, api, admin := confusionEnv(t, nil)
	addr := strings.TrimPrefix(env.edge.URL, "http://")
	tests := []struct {
		name, target string
	}{
		{"path parameter", "/api/admin;x=1"},
		{"path parameter on the looser segment", "/api;x=1/admin"},
		{"encoded semicolon", "/api/admin%3Bx=1"},
		{"upper case", "/API/admin"},
		{"mixed case segment", "/api/Admin/users"},
		{"upper case, deeper", "/api/ADMIN/users"},
		{"trailing dot", "/api/admin./users"},
		{"trailing dots", "/api/admin../users"},
		{"encoded trailing dot", "/api/admin%2e/users"},
		{"trailing space", "/api/admin%20/users"},
		{"trailing dot and case", "/api/Admin./"},
		{"encoded slash", "/api/admin%2Fusers"},
		{"encoded slash, lower case", "/api%2fadmin/users"},
		{"double-encoded slash", "/api/admin%252Fusers"},
		{"double-encoded dots", "/api/%252e%252e/admin"},
		{"backslash", `/api\admin`},
		{"encoded backslash", "/api/admin%5Cusers"},
		{"NUL", "/api/admin%00/users"},
		{"no route, path parameter", "/nothing;x=1"},
		{"no route, encoded slash", "/nothing%2Fhere"},
		{"token endpoint, case", "/OAuth2/Token"},
		{"token endpoint, dot", "/oauth2/token."},
		{"token endpoint, path parameter", "/oauth2/token;x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := env.verifier.calls.Load()
			before := len(api.requests()) + len(admin.requests())
			resp, body := sendRaw(t, addr, "GET "+tc.target+" HTTP/1.1\r\nHost: edge.example\r\n"+
				"Authorization: Bearer "+umbrella+"\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400 (body %s)", resp.StatusCode, body)
			}
			eb := decodeError(t, []byte(body))
			if eb.Error != "invalid_request" || eb.Description == "" {
				t.Errorf("body %s, want invalid_request with a description", body)
			}
			// The description names the rule, never the attacker's path.
			if seg := strings.Trim(tc.target, "/"); strings.Contains(eb.Description, seg) || strings.Contains(body, "users") {
				t.Errorf("the description echoes the path: %s", body)
			}
			if env.verifier.calls.Load() != calls || len(api.requests())+len(admin.requests()) != before {
				t.Error("a refused path reached the verifier or a backend")
			}
		})
	}
	// Spellings that are what they look like still pass.
	for target, want := range map[string]*backend{
		"/api/administrator": api, "/api/x.y": api, "/api/a%20b": api, "/api/admin.json": api,
	} {
		before := len(want.requests())
		resp, body := env.do(t, http.MethodGet, target, bearer(umbrella))
		if resp.StatusCode != http.StatusOK || len(want.requests()) != before+1 {
			t.Errorf("%s: status %d (body %s), want 200 from its backend", target, resp.StatusCode, body)
		}
	}
	if got := testutil.ToFloat64(env.metrics.rejection(ReasonPath)); got != float64(len(tests)) {
		t.Errorf("path rejections = %v, want %d", got, len(tests))
	}
}

// TestFoldRuleAgainstUpperCasePrefix: a route configured in upper case is
// reached through a looser route by a lower-case spelling too.
func TestFoldRuleAgainstUpperCasePrefix(t *testing.T) {
	be := newBackend(t, nil)
	env := newEnv(t, []config.Route{testRoute("root", "/", be.URL), testRoute("admin", "/Admin", be.URL)}, nil)
	env.verifier.add(umbrella, nil)
	for target, want := range map[string]int{"/admin/x": 400, "/ADMIN": 400, "/Admin/x": 200, "/other": 200} {
		if resp, body := env.do(t, http.MethodGet, target, bearer(umbrella)); resp.StatusCode != want {
			t.Errorf("%s: status %d, want %d (body %s)", target, resp.StatusCode, want, body)
		}
	}
}

// TestTokenInQuery: RFC 6750 section 3.1, one way of sending a token.
func TestTokenInQuery(t *testing.T) {
	env, api, _ := confusionEnv(t, nil)
	tests := []struct {
		name, target string
		auth         bool
		status       int
		code         string
		challenge    string
	}{
		{"header and query", "/api/x?access_token=" + umbrella, true, 400, "invalid_request", `Bearer error="invalid_request"`},
		{"header and encoded key", "/api/x?a=1&access%5Ftoken=" + umbrella, true, 400, "invalid_request", `Bearer error="invalid_request"`},
		{"header and upper-case key", "/api/x?ACCESS_TOKEN=" + umbrella, true, 400, "invalid_request", `Bearer error="invalid_request"`},
		{"header and empty query token", "/api/x?access_token=", true, 400, "invalid_request", `Bearer error="invalid_request"`},
		{"query alone", "/api/x?access_token=" + umbrella, false, 401, "unauthorized", challengeRealm},
		{"token endpoint query", tokenPath + "?access_token=" + umbrella, false, 400, "invalid_request", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := env.verifier.calls.Load()
			before := len(api.requests())
			resp, body := env.do(t, http.MethodPost, tc.target, func(r *http.Request) {
				if tc.auth {
					bearer(umbrella)(r)
				}
				r.Header.Set("Content-Type", formType)
				r.Body = io.NopCloser(strings.NewReader(exchangeForm(umbrella, "https://api.example.com").Encode()))
			})
			if resp.StatusCode != tc.status || decodeError(t, body).Error != tc.code {
				t.Fatalf("status %d body %s, want %d %s", resp.StatusCode, body, tc.status, tc.code)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenge)
			}
			if strings.Contains(string(body), umbrella) {
				t.Error("the response echoes the token")
			}
			if env.verifier.calls.Load() != calls || len(api.requests()) != before {
				t.Error("the request reached the verifier or the backend")
			}
		})
	}
}

// TestWebSocketSubprotocolToken: a token in Sec-WebSocket-Protocol would be
// forwarded as it is; the request is refused instead.
func TestWebSocketSubprotocolToken(t *testing.T) {
	env, api, _ := confusionEnv(t, nil)
	other := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2ln"
	tests := []struct {
		name, protocols string
		status          int
	}{
		{"the token as a subprotocol", "access_token, " + umbrella, 400},
		{"the token prefixed", "chat, bearer." + umbrella, 400},
		{"the token base64url-encoded (Kubernetes)", "base64url.bearer.authorization.k8s.io." +
			base64.RawURLEncoding.EncodeToString([]byte(umbrella)), 400},
		{"another JWT", "chat, " + other, 400},
		{"plain subprotocols", "chat, superchat", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(api.requests())
			resp, body := env.do(t, http.MethodGet, "/api/socket", func(r *http.Request) {
				bearer(umbrella)(r)
				r.Header.Set("Sec-WebSocket-Protocol", tc.protocols)
			})
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			forwarded := len(api.requests()) - before
			if tc.status != 200 {
				if forwarded != 0 || decodeError(t, body).Error != "invalid_request" {
					t.Errorf("forwarded %d, body %s: want invalid_request and nothing forwarded", forwarded, body)
				}
				if strings.Contains(string(body), umbrella) {
					t.Error("the response echoes the token")
				}
				return
			}
			if got := api.requests()[before].Header.Get("Sec-Websocket-Protocol"); got != tc.protocols {
				t.Errorf("forwarded subprotocols %q, want %q", got, tc.protocols)
			}
		})
	}
}

// bodyEnv is confusionEnv with a short server.body_timeout.
func bodyEnv(t *testing.T, timeout time.Duration) (*testEnv, *backend) {
	env, api, _ := confusionEnv(t, func(o *Options) { o.Config.Server.BodyTimeout = config.Duration(timeout) })
	return env, api
}

// TestTokenEndpointBodyLimits: a body the gateway reads itself is bounded in
// size (413) and time (408), and the connection is closed after either.
func TestTokenEndpointBodyLimits(t *testing.T) {
	const timeout = 200 * time.Millisecond
	env, _ := bodyEnv(t, timeout)
	addr := strings.TrimPrefix(env.edge.URL, "http://")
	head := "POST " + tokenPath + " HTTP/1.1\r\nHost: edge.example\r\nContent-Type: " + formType + "\r\n"
	big := strings.Repeat("a", 65<<10)
	tests := []struct {
		name   string
		raw    string
		status int
		desc   string
	}{
		{"declared too large", head + "Content-Length: 66560\r\n\r\n" + big, 413, "larger than"},
		{"chunked too large", head + "Transfer-Encoding: chunked\r\n\r\n10400\r\n" + big + "\r\n0\r\n\r\n", 413, "larger than"},
		{"slow body", head + "Content-Length: 100\r\n\r\ngrant_type=", 408, "did not arrive within 200ms"},
		{"bad chunk size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400, "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second)) // a safety net, not a wait
			start := time.Now()
			go func() { _, _ = io.WriteString(conn, tc.raw) }()
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			if eb := decodeError(t, body); eb.Error != "invalid_request" || !strings.Contains(eb.Description, tc.desc) {
				t.Errorf("body %s, want invalid_request %q", body, tc.desc)
			}
			if !resp.Close {
				t.Error("the response does not close the connection")
			}
			// The gateway lets go of the connection: the next read ends.
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) && !isConnReset(err) {
				t.Errorf("after the response, read = %v, want EOF", err)
			}
			if tc.status == 408 && time.Since(start) < timeout {
				t.Errorf("cut off after %v, before body_timeout %v", time.Since(start), timeout)
			}
		})
	}
	if got := testutil.ToFloat64(env.metrics.rejection(ReasonBody)); got != float64(len(tests)) {
		t.Errorf("body rejections = %v, want %d", got, len(tests))
	}
}

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

// TestReadBody covers the helper's classification directly.
func TestReadBody(t *testing.T) {
	w := &discardWriter{h: http.Header{}}
	r, _ := http.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("x", 10)))
	if _, err := readBody(w, r, 5, time.Second); !isBodyStatus(err, 413) {
		t.Errorf("over the limit: %v, want 413", err)
	}
	r, _ = http.NewRequest(http.MethodPost, "/", io.NopCloser(strings.NewReader(strings.Repeat("x", MaxBodyBytes+1))))
	r.ContentLength = -1
	if _, err := readBody(w, r, 1<<30, time.Second); !isBodyStatus(err, 413) {
		t.Errorf("a limit above MaxBodyBytes is capped: %v, want 413", err)
	}
	r, _ = http.NewRequest(http.MethodPost, "/", strings.NewReader("ok"))
	if b, err := readBody(w, r, 5, time.Second); err != nil || string(b) != "ok" {
		t.Errorf("readBody = %q, %v", b, err)
	}
}

func isBodyStatus(err error, status int) bool {
	var be *bodyError
	return errors.As(err, &be) && be.status == status
}

// TestMalformedChunkedProxiedBody: a client's broken chunked body on a
// proxied route is 400, a client error, never a 502; nothing is forwarded
// when the first chunk is broken, and a later break aborts the upstream
// request.
func TestMalformedChunkedProxiedBody(t *testing.T) {
	env, api := bodyEnv(t, time.Second)
	addr := strings.TrimPrefix(env.edge.URL, "http://")
	head := "POST /api/upload HTTP/1.1\r\nHost: edge.example\r\nAuthorization: Bearer " + umbrella +
		"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
	for name, chunks := range map[string]string{
		"first chunk size":   "zz\r\nabc\r\n0\r\n\r\n",
		"chunk size too big": "fffffffffffffffffffff\r\nabc\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			before := len(api.requests())
			resp, body := sendRaw(t, addr, head+chunks)
			if resp.StatusCode != http.StatusBadRequest || decodeError(t, []byte(body)).Error != "invalid_request" {
				t.Fatalf("status %d body %s, want 400 invalid_request", resp.StatusCode, body)
			}
			if n := len(api.requests()) - before; n != 0 {
				t.Errorf("the backend received %d requests, want none", n)
			}
		})
	}
	if got := testutil.ToFloat64(env.metrics.rejection(ReasonBody)); got != 2 {
		t.Errorf("body rejections = %v, want 2", got)
	}
	if got := testutil.ToFloat64(env.metrics.Requests.WithLabelValues("api", "502")); got != 0 {
		t.Errorf("counted %v requests as 502", got)
	}
}

// TestMalformedChunkedAfterForwarding: a body that breaks after the
// upstream request started aborts it and is still the client's 400.
func TestMalformedChunkedAfterForwarding(t *testing.T) {
	started := make(chan struct{})
	readErr := make(chan error, 1)
	be := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		_, err := io.Copy(io.Discard, r.Body)
		readErr <- err
	})
	env := newEnv(t, []config.Route{testRoute("api", "/api", be.URL)}, nil)
	env.verifier.add(umbrella, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.edge.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	_, _ = io.WriteString(conn, "POST /api/upload HTTP/1.1\r\nHost: edge.example\r\nAuthorization: Bearer "+umbrella+
		"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n")
	<-started // the upstream request is under way
	_, _ = io.WriteString(conn, "zz\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400 (body %s)", resp.StatusCode, body)
	}
	if err := <-readErr; err == nil {
		t.Error("the backend read a complete body: the upstream request was not aborted")
	}
	if got := testutil.ToFloat64(env.metrics.rejection(ReasonBody)); got != 1 {
		t.Errorf("body rejections = %v, want 1", got)
	}
}

// TestAdminRevokeBodyLimits: POST /admin/revoke reads its body through the
// same helper: 413 over 64 KiB, 408 when it trickles.
func TestAdminRevokeBodyLimits(t *testing.T) {
	const timeout = 200 * time.Millisecond
	rv := &fakeRevoker{}
	srv := httptest.NewServer(NewAdmin(AdminOptions{AdminToken: testAdminToken, Revoker: rv, BodyTimeout: timeout}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	head := "POST /admin/revoke HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer " + testAdminToken +
		"\r\nContent-Type: application/json\r\n"
	big := `{"sub":"` + strings.Repeat("a", 65<<10) + `"}`
	tests := []struct {
		name   string
		raw    string
		status int
	}{
		{"too large", head + "Content-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big, 413},
		{"slow body", head + "Content-Length: 100\r\n\r\n{\"sub\":", 408},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := sendRaw(t, addr, tc.raw)
			if resp.StatusCode != tc.status || decodeError(t, []byte(body)).Error != "invalid_request" || !resp.Close {
				t.Fatalf("status %d close %v body %s, want %d invalid_request and the connection closed",
					resp.StatusCode, resp.Close, body, tc.status)
			}
		})
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if len(rv.calls) != 0 {
		t.Error("a refused body reached the revoker")
	}
}
