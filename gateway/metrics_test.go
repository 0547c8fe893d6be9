package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// histogramCount is the sample count of a histogram series with route=route.
func histogramCount(t *testing.T, g prometheus.Gatherer, name, route string) uint64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == route {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

func TestMetricsMove(t *testing.T) {
	be := newBackend(t, nil)
	env := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL), testRoute("down", "/down", closedURL(t))}, nil)
	env.verifier.fail("tok-expired-0123456789", exchange.Reject(exchange.ReasonExpired, "expired", nil))

	env.do(t, http.MethodGet, "/orders", bearer(umbrella))
	env.do(t, http.MethodGet, "/orders", bearer(umbrella))
	env.do(t, http.MethodGet, "/orders", bearer("tok-expired-0123456789"))
	env.do(t, http.MethodGet, "/down", bearer(umbrella))
	env.do(t, http.MethodGet, "/nowhere", nil)

	m := env.metrics
	for _, c := range []struct {
		col  prometheus.Collector
		want float64
	}{
		{m.Requests.WithLabelValues("orders", "200"), 2},
		{m.Requests.WithLabelValues("orders", "401"), 1},
		{m.Requests.WithLabelValues("down", "502"), 1},
		{m.Requests.WithLabelValues(noRouteLabel, "404"), 1},
		{m.TokenRejections.WithLabelValues("expired"), 1},
		{m.TokenRejections.WithLabelValues("policy"), 0},
	} {
		if got := testutil.ToFloat64(c.col); got != c.want {
			t.Errorf("%v = %v, want %v", c.col.(prometheus.Metric).Desc(), got, c.want)
		}
	}
	for _, h := range []struct {
		name, route string
		want        uint64
	}{
		{"tokengate_request_duration_seconds", "orders", 3},
		{"tokengate_request_duration_seconds", noRouteLabel, 1},
		{"tokengate_upstream_duration_seconds", "orders", 2},
		{"tokengate_upstream_duration_seconds", "down", 1},
	} {
		if got := histogramCount(t, env.reg, h.name, h.route); got != h.want {
			t.Errorf("%s{route=%q} count = %d, want %d", h.name, h.route, got, h.want)
		}
	}

	for _, c := range []prometheus.Collector{m.Requests, m.RequestDuration, m.UpstreamDuration, m.TokenRejections} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil || len(problems) > 0 {
			t.Errorf("lint: %v %v", problems, err)
		}
	}
	// Labels hold route names, codes and reasons only: never a path or a subject.
	fams, err := env.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"orders": true, "down": true, noRouteLabel: true}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "route" && !allowed[l.GetValue()] {
					t.Errorf("%s has route label %q", f.GetName(), l.GetValue())
				}
				if strings.ContainsAny(l.GetValue(), "/?") || strings.Contains(l.GetValue(), "alice") {
					t.Errorf("%s label %s=%q looks like a path or subject", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestNewMetricsTwiceOnOneRegistry documents why Metrics are shared across
// reloads: a second registration panics.
func TestNewMetricsTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	// Two gateways (a reload) share one Metrics without registering again.
	for range 2 {
		if _, err := New(Options{Config: &config.Config{}, Verifier: newFakeVerifier(), Exchanger: newFakeExchanger(), Metrics: m}); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("registering twice did not panic")
		}
	}()
	NewMetrics(reg)
}

func TestAccessLog(t *testing.T) {
	be := newBackend(t, nil)
	r := testRoute("orders", "/orders", be.URL)
	r.RequiredScopes = []string{"payments:refund"}
	env := newEnv(t, []config.Route{r}, nil)
	env.do(t, http.MethodPost, "/orders/secret-path?state="+umbrella, func(r *http.Request) {
		bearer(umbrella)(r)
		r.Header.Set("X-Request-Id", "rid-42")
	})
	logs := env.logs.String()
	rec := accessLogLine(t, logs)
	want := map[string]any{
		"level": "INFO", "msg": "request", "route": "orders", "method": "POST", "status": float64(403),
		"request_id": "rid-42", "client_id": "web", "reason": "policy",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("log %s = %v, want %v", k, rec[k], v)
		}
	}
	if d, ok := rec["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms = %v, want a number of milliseconds", rec["duration_ms"])
	}
	// The path as sent, never its query string (where this one put a token).
	if rec["path"] != "/orders/secret-path" {
		t.Errorf("path = %v, want /orders/secret-path", rec["path"])
	}
	// Refused before any exchange: no cache outcome, no upstream call.
	if rec["cache"] != "none" || rec["upstream_duration_ms"] != nil {
		t.Errorf("cache = %v, upstream_duration_ms = %v; want none and absent", rec["cache"], rec["upstream_duration_ms"])
	}
	for _, secret := range []string{umbrella, "alice-subject", "state="} {
		if strings.Contains(logs, secret) {
			t.Errorf("the access log holds %q", secret)
		}
	}

	// A disabled level writes nothing.
	quiet := &syncBuffer{}
	env2 := newEnv(t, []config.Route{testRoute("orders", "/orders", be.URL)}, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(quiet, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	env2.do(t, http.MethodGet, "/orders", bearer(umbrella))
	if quiet.String() != "" {
		t.Errorf("logged at a disabled level: %s", quiet.String())
	}
}

// accessLogLine asserts that logs hold exactly one JSON line and decodes it.
func accessLogLine(t *testing.T, logs string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one access log line, got %d:\n%s", len(lines), logs)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}
