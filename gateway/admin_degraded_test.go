package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestReadyzDegradedParts: per-issuer parts and optional checks are named
// under "degraded" while /readyz stays 200; a Parts error (no issuer can
// serve) is a 503; tokengate_component_degraded says the same, is kept
// fresh by /metrics scrapes, and forgets components that went away.
func TestReadyzDegradedParts(t *testing.T) {
	var (
		idpDown   = errors.New("jwks refresh failed: GET https://idp-b/jwks.json: unexpected status 500")
		redisDown = errors.New("dial tcp 127.0.0.1:6379: connection refused")
		partsErr  error
		redisErr  error
	)
	issuers := ReadinessCheck{Name: "issuer_keys", Parts: func(context.Context) (map[string]error, error) {
		return map[string]error{"issuer https://idp-a/": nil, "issuer https://idp-b/": idpDown}, partsErr
	}}
	redis := ReadinessCheck{Name: "redis", Optional: true, Check: func(context.Context) error { return redisErr }}
	metrics := NewMetrics(prometheus.NewRegistry())
	admin := NewAdmin(AdminOptions{Checks: []ReadinessCheck{issuers, redis}, Degraded: metrics.ComponentDegraded})

	readyz := func() (int, readyBody) {
		t.Helper()
		resp, body := adminGet(t, admin, http.MethodGet, "/readyz")
		var got readyBody
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		return resp.StatusCode, got
	}
	gauge := func(component string) float64 {
		return testutil.ToFloat64(metrics.ComponentDegraded.WithLabelValues(component))
	}

	status, body := readyz()
	if status != 200 || body.Status != "degraded" || body.Degraded["issuer https://idp-b/"] != idpDown.Error() || len(body.Degraded) != 1 {
		t.Fatalf("one issuer down: %d %+v", status, body)
	}
	if gauge("issuer https://idp-b/") != 1 || gauge("issuer https://idp-a/") != 0 || gauge("redis") != 0 {
		t.Errorf("gauge: idp-b %v idp-a %v redis %v", gauge("issuer https://idp-b/"), gauge("issuer https://idp-a/"), gauge("redis"))
	}

	// Redis goes down: degraded, still ready; a scrape alone updates the gauge.
	redisErr = redisDown
	if resp, _ := adminGet(t, admin, http.MethodGet, "/metrics"); resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	if gauge("redis") != 1 {
		t.Error("a /metrics scrape did not refresh the redis component")
	}
	status, body = readyz()
	if status != 200 || body.Degraded["redis"] != redisDown.Error() {
		t.Fatalf("redis down: %d %+v", status, body)
	}

	// No issuer can serve: 503, the parts still named.
	partsErr = errors.New("no issuer has usable signing keys")
	status, body = readyz()
	if status != 503 || body.Checks["issuer_keys"] == "" || body.Degraded["issuer https://idp-b/"] == "" {
		t.Fatalf("no issuer: %d %+v", status, body)
	}

	// A reload's admin without Redis: the redis series is gone.
	admin = NewAdmin(AdminOptions{Checks: []ReadinessCheck{issuers}, Degraded: metrics.ComponentDegraded})
	readyz()
	if n := testutil.CollectAndCount(metrics.ComponentDegraded); n != 2 {
		t.Errorf("series after the component went away = %d, want 2", n)
	}
	problems, err := testutil.CollectAndLint(metrics.ComponentDegraded)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", err, problems)
	}
	if strings.Contains(body.Degraded["issuer https://idp-b/"], "\n") {
		t.Error("a degraded reason spans lines")
	}
}
