package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tokengate/tokengate/internal/redistest"
)

// TestTracingE2ESTSClientSpan: in remote mode the STS call is a CLIENT span
// under the exchange span, with the client's trace id, and its url.full has
// no query and no credential.
func TestTracingE2ESTSClientSpan(t *testing.T) {
	rc := newOTLPReceiver(t)
	idp, sts := newE2EIdP(t), newE2ESTS(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startRemoteE2EWith(t, idp, fmt.Sprintf("token_endpoint: %q", sts.TokenURL()), orders, inventory, func(text string) string {
		return text + fmt.Sprintf("tracing:\n  otlp_endpoint: %q\n", rc.srv.URL)
	})
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	if s := send(t, g, "/orders/1", umbrella, map[string]string{"traceparent": "00-" + clientTraceID + "-" + clientSpanID + "-01"}); s != 200 {
		t.Fatalf("status %d", s)
	}
	spans := waitTrace(t, g, rc, clientTraceID, 5)
	exch := findSpan(spans, tracepb.Span_SPAN_KIND_INTERNAL, "exchange token")
	var stsSpan *tracepb.Span
	for _, s := range spans {
		if s.Kind == tracepb.Span_SPAN_KIND_CLIENT && strings.HasPrefix(s.Name, "POST ") {
			stsSpan = s
		}
	}
	if exch == nil || stsSpan == nil {
		t.Fatalf("want an exchange span and a POST client span: %v", spanNames(spans))
	}
	if !bytes.Equal(stsSpan.ParentSpanId, exch.SpanId) {
		t.Errorf("the STS span's parent is %x, want the exchange span %x", stsSpan.ParentSpanId, exch.SpanId)
	}
	if got := attr(stsSpan, "url.full"); got != sts.TokenURL() {
		t.Errorf("STS span url.full = %q", got)
	}
	assertNoSecretsInSpans(t, rc.all(), umbrella, e2eSTSSecret, "Bearer", "Basic ")
}

// TestTracingE2ERedisSpans: with cache.redis, Redis commands are CLIENT
// spans in the request's trace with db.system=redis and no statement (no
// key, no value).
func TestTracingE2ERedisSpans(t *testing.T) {
	rs := redistest.Start(t)
	rc := newOTLPReceiver(t)
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	_, key := replicaSecrets(t)
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{
		cacheYAML: redisCacheYAML(rs.Addr(), key),
		edit: func(text, _ string) string {
			return text + fmt.Sprintf("tracing:\n  otlp_endpoint: %q\n", rc.srv.URL)
		},
	})
	umbrella := idp.mint(t, map[string]any{"sub": "subject-in-clear-31", "aud": audOrders, "scope": "orders:read"})
	if s := send(t, g, "/orders/1", umbrella, map[string]string{"traceparent": "00-" + clientTraceID + "-" + clientSpanID + "-01"}); s != 200 {
		t.Fatalf("status %d", s)
	}
	spans := waitTrace(t, g, rc, clientTraceID, 5)
	var redisSpans int
	for _, s := range spans {
		if attr(s, "db.system") == "redis" {
			redisSpans++
			if s.Kind != tracepb.Span_SPAN_KIND_CLIENT || attr(s, "db.statement") != "" {
				t.Errorf("redis span %q: kind %s statement %q", s.Name, s.Kind, attr(s, "db.statement"))
			}
		}
	}
	if redisSpans == 0 {
		t.Errorf("no Redis span in the trace: %v", spanNames(spans))
	}
	assertNoSecretsInSpans(t, rc.all(), umbrella, "subject-in-clear-31", "Bearer", "tokengate:")
}

// TestTracingE2EReloadNeedsRestart: the tracer is process-wide; a reload
// that changes the tracing keys keeps it and says they need a restart.
func TestTracingE2EReloadNeedsRestart(t *testing.T) {
	rc := newOTLPReceiver(t)
	_, _, g := tracingGateway(t, rc, "1.0")
	before := g.srv.proc.Telemetry
	writeFile(t, g.path, []byte(strings.Replace(g.cfgText, "sample_ratio: 1.0", "sample_ratio: 0.5", 1)))
	if err := g.srv.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g.logs.String(), "tracing settings changed; they take effect only after a restart") {
		t.Errorf("the reload did not say tracing needs a restart:\n%s", g.logs.String())
	}
	if g.srv.proc.Telemetry != before || g.srv.proc.Telemetry.Settings().SampleRatio != 1 {
		t.Errorf("the reload replaced the tracer provider")
	}
}

// TestTracingE2ETokenEndpointSpan: the token endpoint has its server span
// too, named after its route label; the admin listener has none.
func TestTracingE2ETokenEndpointSpan(t *testing.T) {
	rc := newOTLPReceiver(t)
	_, _, g := tracingGateway(t, rc, "1.0")
	tid := strings.Repeat("d", 32)
	req, _ := http.NewRequest(http.MethodPost, g.srv.EdgeURL()+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("traceparent", "00-"+tid+"-"+clientSpanID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	adminReq, _ := http.NewRequest(http.MethodGet, g.srv.AdminURL()+"/metrics", nil)
	adminReq.Header.Set("traceparent", "00-"+strings.Repeat("e", 32)+"-"+clientSpanID+"-01")
	if resp, err := http.DefaultClient.Do(adminReq); err == nil {
		resp.Body.Close()
	}
	spans := waitTrace(t, g, rc, tid, 1)
	s := findSpan(spans, tracepb.Span_SPAN_KIND_SERVER, "POST token_endpoint")
	if s == nil {
		t.Fatalf("no server span POST token_endpoint: %v", spanNames(spans))
	}
	if got := attr(s, "http.response.status_code"); got != fmt.Sprint(resp.StatusCode) {
		t.Errorf("status attribute %q, response %d", got, resp.StatusCode)
	}
	if admin := rc.trace(strings.Repeat("e", 32)); len(admin) != 0 {
		t.Errorf("the admin listener was traced: %v", spanNames(admin))
	}
}

// TestTracingE2EShutdownFlushes: spans still queued at exit are exported by
// the shutdown, without any explicit flush (the batch timeout is 5s).
func TestTracingE2EShutdownFlushes(t *testing.T) {
	rc := newOTLPReceiver(t)
	idp, _, g := tracingGateway(t, rc, "1.0")
	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	if s := send(t, g, "/orders/1", umbrella, map[string]string{"traceparent": "00-" + clientTraceID + "-" + clientSpanID + "-01"}); s != 200 {
		t.Fatalf("status %d", s)
	}
	if err := g.srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if findSpan(rc.trace(clientTraceID), tracepb.Span_SPAN_KIND_SERVER, "GET orders") == nil {
		t.Errorf("the server span was not exported at shutdown: %v", spanNames(rc.trace(clientTraceID)))
	}
}
