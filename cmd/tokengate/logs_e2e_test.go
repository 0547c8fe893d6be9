package main

import (
	"encoding/json"
	"strings"
	"testing"
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
			rec["request_id"] == nil || rec["duration"] == nil {
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
