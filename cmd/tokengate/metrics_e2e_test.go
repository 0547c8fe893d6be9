package main

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// scrape reads /metrics from the admin listener and returns every sample in
// the text format, keyed by `name{label="value",...}` with labels sorted.
func scrape(t *testing.T, g *e2eGateway) map[string]float64 {
	t.Helper()
	resp, body := get(t, g.srv.AdminURL()+"/metrics")
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics = %d", resp.StatusCode)
	}
	samples := map[string]float64{}
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

// series formats a series key as the text format writes it (labels sorted).
func series(name string, labels map[string]string) string {
	if len(labels) == 0 {
		return name
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+strconv.Quote(labels[k]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// TestE2EMetricsAfterTraffic sends real traffic, reloads, then scrapes the
// admin listener's /metrics and checks that every metric of CONTRACT.md
// section 7 moved by what the traffic implies; and lints the whole registry.
func TestE2EMetricsAfterTraffic(t *testing.T) {
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	before := scrape(t, g)
	good := idp.mint(t, map[string]any{"sub": "u", "aud": []string{audOrders, audInventory}, "scope": "orders:read inventory:read"})
	expired := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read", "exp": time.Now().Add(-time.Hour).Unix()})
	noScope := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:write"})

	for _, r := range []struct {
		path, token string
		status      int
	}{
		{"/orders/1", good, 200},    // exchange: memory miss
		{"/orders/2", good, 200},    // memory hit
		{"/inventory/1", good, 200}, // another audience: miss
		{"/orders/3", expired, 401},
		{"/orders/4", noScope, 403},
		{"/nowhere", good, 404},
	} {
		if resp, body := g.get(t, r.path, r.token); resp.StatusCode != r.status {
			t.Fatalf("%s: %d %s, want %d", r.path, resp.StatusCode, body, r.status)
		}
	}
	if err := g.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}

	after := scrape(t, g)
	route := func(r string) map[string]string { return map[string]string{"route": r} }
	tests := []struct {
		name   string
		labels map[string]string
		delta  float64
	}{
		{"tokengate_requests_total", map[string]string{"route": "orders", "code": "200"}, 2},
		{"tokengate_requests_total", map[string]string{"route": "orders", "code": "401"}, 1},
		{"tokengate_requests_total", map[string]string{"route": "orders", "code": "403"}, 1},
		{"tokengate_requests_total", map[string]string{"route": "inventory", "code": "200"}, 1},
		{"tokengate_requests_total", map[string]string{"route": "_none", "code": "404"}, 1},
		{"tokengate_request_duration_seconds_count", route("orders"), 4},
		{"tokengate_request_duration_seconds_count", route("inventory"), 1},
		{"tokengate_upstream_duration_seconds_count", route("orders"), 2},
		{"tokengate_upstream_duration_seconds_count", route("inventory"), 1},
		{"tokengate_token_rejections_total", map[string]string{"reason": "expired"}, 1},
		{"tokengate_token_rejections_total", map[string]string{"reason": "policy"}, 1},
		{"tokengate_token_rejections_total", map[string]string{"reason": "signature"}, 0},
		{"tokengate_exchanges_total", map[string]string{"audience": audOrders, "mode": "local", "result": "ok"}, 1},
		{"tokengate_exchanges_total", map[string]string{"audience": audInventory, "mode": "local", "result": "ok"}, 1},
		{"tokengate_exchange_duration_seconds_count", map[string]string{"mode": "local"}, 2},
		{"tokengate_cache_requests_total", map[string]string{"tier": "memory", "result": "hit"}, 1},
		{"tokengate_cache_entries", map[string]string{"tier": "memory"}, 2},
		{"tokengate_config_reloads_total", map[string]string{"result": "ok"}, 1},
		{"tokengate_config_reloads_total", map[string]string{"result": "error"}, 0},
	}
	for _, tc := range tests {
		key := series(tc.name, tc.labels)
		got, ok := after[key]
		if !ok {
			t.Errorf("%s is not exposed", key)
			continue
		}
		if d := got - before[key]; d != tc.delta {
			t.Errorf("%s moved by %v, want %v", key, d, tc.delta)
		}
	}
	// Exactly one counted miss per exchange: the second lookup inside the
	// single flight is not counted again (cache.LookupRecheck).
	miss := series("tokengate_cache_requests_total", map[string]string{"tier": "memory", "result": "miss"})
	if d := after[miss] - before[miss]; d != 2 {
		t.Errorf("%s moved by %v, want 2 for 2 exchanges", miss, d)
	}
	// Exposed with any value: fetches happen at start and on reload.
	for _, key := range []string{
		series("tokengate_jwks_refreshes_total", map[string]string{"issuer": idp.URL(), "result": "ok"}),
		series("tokengate_config_last_reload_successful", nil),
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if after[key] <= 0 {
			t.Errorf("%s = %v, want > 0", key, after[key])
		}
	}
	if after[series("tokengate_jwks_refreshes_total", map[string]string{"issuer": idp.URL(), "result": "ok"})] < 2 {
		t.Error("the reload did not fetch the issuer's keys again")
	}
	buildInfo := false
	for key, v := range after {
		if strings.HasPrefix(key, "tokengate_build_info{") && strings.Contains(key, `goversion="go`) && v == 1 {
			buildInfo = true
		}
	}
	if !buildInfo {
		t.Error("tokengate_build_info{version, goversion} = 1 is not exposed")
	}

	// Bounded labels: no path, subject or token ever becomes a label value.
	for key := range after {
		for _, bad := range []string{"/orders/", "/nowhere", `"u"`, good[:20]} {
			if strings.Contains(key, bad) {
				t.Errorf("series %s holds %q", key, bad)
			}
		}
	}

	// Names, help and types pass promlint on the whole registry.
	problems, err := testutil.GatherAndLint(g.srv.proc.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
