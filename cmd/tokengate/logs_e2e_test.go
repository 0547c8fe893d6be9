package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// accessLines are the access log lines (msg "request") written so far.
func accessLines(t *testing.T, g *e2eGateway) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(g.logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("a log line is not JSON: %q", line)
		}
		if rec["msg"] == "request" {
			lines = append(lines, rec)
		}
	}
	return lines
}

// TestE2EAccessLog: one line per request with route, status, duration,
// request id, client id and rejection reason; never the token; the subject
// only once log.subjects is switched on (by a reload).
func TestE2EAccessLog(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	const subject = "person-4711"
	good := idp.mint(t, map[string]any{"sub": subject, "client_id": "spa", "aud": audOrders, "scope": "orders:read"})
	noScope := idp.mint(t, map[string]any{"sub": subject, "client_id": "spa", "aud": audOrders, "scope": "orders:write"})

	g.get(t, "/orders/1", good)
	g.get(t, "/orders/2", noScope)
	lines := accessLines(t, g)
	if len(lines) != 2 {
		t.Fatalf("%d access lines for 2 requests", len(lines))
	}
	for i, want := range []struct {
		status float64
		reason string
	}{{200, ""}, {403, "policy"}} {
		rec := lines[i]
		if rec["route"] != "orders" || rec["status"] != want.status || rec["client_id"] != "spa" ||
			rec["request_id"] == nil || rec["duration_ms"] == nil {
			t.Errorf("line %d = %v", i, rec)
		}
		if got, _ := rec["reason"].(string); got != want.reason {
			t.Errorf("line %d reason = %q, want %q", i, got, want.reason)
		}
		if _, has := rec["sub"]; has {
			t.Errorf("line %d logs sub without log.subjects", i)
		}
	}
	for _, secret := range []string{good, noScope, subject} {
		if strings.Contains(g.logs.String(), secret) {
			t.Errorf("the log holds %q", secret[:min(len(secret), 24)])
		}
	}
	assertNoUmbrella(t, good, g, orders, inventory)

	// Switched on by a reload: the subject is logged from then on.
	on := strings.Replace(g.cfgText, "log:\n  level: debug\n", "log:\n  level: debug\n  subjects: true\n", 1)
	if on == g.cfgText {
		t.Fatal("the configuration template changed; fix the replacement")
	}
	writeFile(t, g.path, []byte(on))
	if err := g.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	g.get(t, "/orders/3", good)
	lines = accessLines(t, g)
	if last := lines[len(lines)-1]; last["sub"] != subject {
		t.Errorf("with log.subjects: true the line is %v, want sub %q", last, subject)
	}
	assertNoUmbrella(t, good, g, orders, inventory)
}

// TestE2EAccessLogFields (contract section 12): each line has the path as
// sent without its query, duration_ms, upstream_duration_ms when the
// upstream was called, the user agent, body bytes in and out, and the cache
// outcome (miss, then hit; none when refused); a request without a token
// is counted as a rejection (reason missing).
func TestE2EAccessLogFields(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	good := idp.mint(t, map[string]any{"sub": "u-1", "client_id": "spa", "aud": audOrders, "scope": "orders:read"})

	send := func(token string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, g.srv.EdgeURL()+"/orders/7?state=secret-query", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("User-Agent", "log-test/1.0")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send(good)
	send(good)
	send("")

	lines := accessLines(t, g)
	if len(lines) != 3 {
		t.Fatalf("%d access lines for 3 requests", len(lines))
	}
	for i, want := range []struct {
		status float64
		cache  string
		reason string
	}{{200, "miss", ""}, {200, "hit", ""}, {401, "none", "missing"}} {
		rec := lines[i]
		if rec["status"] != want.status || rec["cache"] != want.cache || (want.reason != "" && rec["reason"] != want.reason) {
			t.Errorf("line %d: status %v cache %v reason %v; want %v %v %q", i, rec["status"], rec["cache"], rec["reason"], want.status, want.cache, want.reason)
		}
		if rec["path"] != "/orders/7" || rec["method"] != "POST" || rec["user_agent"] != "log-test/1.0" {
			t.Errorf("line %d: path %v method %v user_agent %v", i, rec["path"], rec["method"], rec["user_agent"])
		}
		if _, ok := rec["duration_ms"].(float64); !ok {
			t.Errorf("line %d: duration_ms = %v", i, rec["duration_ms"])
		}
		_, upstream := rec["upstream_duration_ms"].(float64)
		if upstream != (want.status == 200) {
			t.Errorf("line %d: upstream_duration_ms = %v (status %v)", i, rec["upstream_duration_ms"], want.status)
		}
		if want.status == 200 && (rec["bytes_in"] != float64(len("hello")) || rec["bytes_out"].(float64) <= 0) {
			t.Errorf("line %d: bytes_in %v bytes_out %v", i, rec["bytes_in"], rec["bytes_out"])
		}
	}
	if strings.Contains(g.logs.String(), "secret-query") || strings.Contains(g.logs.String(), good) {
		t.Error("the access log holds the query string or the token")
	}
	if got := testutil.ToFloat64(g.srv.proc.GatewayMetrics.TokenRejections.WithLabelValues("missing")); got != 1 {
		t.Errorf("rejections{reason=missing} = %v, want 1", got)
	}
}
