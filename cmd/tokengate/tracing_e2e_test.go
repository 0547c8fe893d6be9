package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is a real OTLP/HTTP trace receiver: POST /v1/traces with an
// ExportTraceServiceRequest in protobuf, maybe gzipped.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	res   []*commonpb.KeyValue // the last resource's attributes
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	rc := &otlpReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(raw, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.ResourceSpans {
			rc.res = rs.GetResource().GetAttributes()
			for _, ss := range rs.ScopeSpans {
				rc.spans = append(rc.spans, ss.Spans...)
			}
		}
		rc.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// trace returns the spans received of one trace id (hex).
func (rc *otlpReceiver) trace(traceID string) []*tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range rc.spans {
		if fmt.Sprintf("%x", s.TraceId) == traceID {
			out = append(out, s)
		}
	}
	return out
}

func (rc *otlpReceiver) all() []*tracepb.Span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]*tracepb.Span(nil), rc.spans...)
}

// waitTrace flushes the gateway's spans until the trace has its server
// span (which ends just after the response is sent), or fails.
func waitTrace(t *testing.T, g *e2eGateway, rc *otlpReceiver, traceID string, want int) []*tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		g.srv.proc.Telemetry.ForceFlush(ctx)
		cancel()
		spans := rc.trace(traceID)
		if len(spans) >= want && findSpan(spans, tracepb.Span_SPAN_KIND_SERVER, "") != nil {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: %d spans received, want %d with a server span: %v", traceID, len(spans), want, spanNames(spans))
		}
	}
}

func spanNames(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, fmt.Sprintf("%s(%s)", s.Name, s.Kind))
	}
	return out
}

// findSpan finds a span by kind and, unless "", name.
func findSpan(spans []*tracepb.Span, kind tracepb.Span_SpanKind, name string) *tracepb.Span {
	for _, s := range spans {
		if s.Kind == kind && (name == "" || s.Name == name) {
			return s
		}
	}
	return nil
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			if iv, ok := kv.Value.Value.(*commonpb.AnyValue_IntValue); ok {
				return fmt.Sprint(iv.IntValue)
			}
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// tracingGateway starts the e2e gateway with tracing to rc (ratio as given).
func tracingGateway(t *testing.T, rc *otlpReceiver, ratio string) (*e2eIdP, *e2eBackend, *e2eGateway) {
	t.Helper()
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: func(text, _ string) string {
		return text + fmt.Sprintf("tracing:\n  otlp_endpoint: %q\n  sample_ratio: %s\n  service_name: tg-e2e\n", rc.srv.URL, ratio)
	}})
	return idp, orders, g
}

// send sends GET path with a bearer token and headers, returning the status.
func send(t *testing.T, g *e2eGateway, path, token string, headers map[string]string) int {
	t.Helper()
	resp, _ := sendWith(t, http.MethodGet, g.srv.EdgeURL()+path, token, headers)
	return resp.StatusCode
}

const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
)

// TestTracingE2ETraceTree: through the real server and a real OTLP
// receiver, one request is one trace continuing the client's traceparent:
// the server span (named by route, with the route's attributes) is the
// client span's child, verify, exchange and the upstream CLIENT span are
// its children, and the backend receives a traceparent with the client's
// trace id and the upstream span's id (tracestate kept). No span holds the
// token, "Bearer" or the query string.
func TestTracingE2ETraceTree(t *testing.T) {
	rc := newOTLPReceiver(t)
	idp, orders, g := tracingGateway(t, rc, "1.0")
	umbrella := idp.mint(t, map[string]any{"sub": "user-1", "aud": audOrders, "scope": "orders:read"})

	status := send(t, g, "/orders/42?secret=q1", umbrella, map[string]string{
		"traceparent": "00-" + clientTraceID + "-" + clientSpanID + "-01",
		"tracestate":  "vendor=opaque",
	})
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	spans := waitTrace(t, g, rc, clientTraceID, 4)
	server := findSpan(spans, tracepb.Span_SPAN_KIND_SERVER, "GET orders")
	if server == nil {
		t.Fatalf("no server span GET orders: %v", spanNames(spans))
	}
	if got := fmt.Sprintf("%x", server.ParentSpanId); got != clientSpanID {
		t.Errorf("server span parent = %s, want the client's %s", got, clientSpanID)
	}
	for k, want := range map[string]string{
		"http.request.method": "GET", "http.response.status_code": "200",
		"http.route": "/orders", "tokengate.route": "orders",
	} {
		if got := attr(server, k); got != want {
			t.Errorf("server span %s = %q, want %q", k, got, want)
		}
	}
	if server.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("server span of a 200 has an error status")
	}
	children := map[string]tracepb.Span_SpanKind{
		"verify token": tracepb.Span_SPAN_KIND_INTERNAL, "exchange token": tracepb.Span_SPAN_KIND_INTERNAL,
		"GET orders": tracepb.Span_SPAN_KIND_CLIENT,
	}
	var upstream *tracepb.Span
	for name, kind := range children {
		s := findSpan(spans, kind, name)
		if s == nil {
			t.Errorf("no %s span %q: %v", kind, name, spanNames(spans))
			continue
		}
		if !bytes.Equal(s.ParentSpanId, server.SpanId) {
			t.Errorf("%s's parent = %x, want the server span %x", name, s.ParentSpanId, server.SpanId)
		}
		if kind == tracepb.Span_SPAN_KIND_CLIENT {
			upstream = s
		}
	}
	if upstream == nil {
		t.FailNow()
	}
	got := orders.received()[0]
	wantTP := fmt.Sprintf("00-%s-%x-01", clientTraceID, upstream.SpanId)
	if tp := got.Header.Get("traceparent"); tp != wantTP {
		t.Errorf("backend traceparent = %q, want %q", tp, wantTP)
	}
	if ts := got.Header.Get("tracestate"); ts != "vendor=opaque" {
		t.Errorf("backend tracestate = %q, want vendor=opaque", ts)
	}
	exchanged := bearerOf(got)
	assertNoSecretsInSpans(t, rc.all(), umbrella, exchanged, "Bearer", "secret=q1", "q1")

	// A refusal: the reason on the server span, a 4xx not an error status.
	send(t, g, "/orders/1", "not-a-jwt", map[string]string{"traceparent": "00-" + strings.Repeat("a", 32) + "-" + clientSpanID + "-01"})
	rejected := findSpan(waitTrace(t, g, rc, strings.Repeat("a", 32), 1), tracepb.Span_SPAN_KIND_SERVER, "GET orders")
	if rejected == nil {
		t.Fatal("no server span for the refused request")
	}
	if attr(rejected, "tokengate.reason") == "" || attr(rejected, "http.response.status_code") != "401" {
		t.Errorf("refused request: reason %q status %q", attr(rejected, "tokengate.reason"), attr(rejected, "http.response.status_code"))
	}
	if rejected.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("a 401 is an error status on the server span")
	}
	rc.mu.Lock()
	service := ""
	for _, kv := range rc.res {
		if kv.Key == "service.name" {
			service = kv.Value.GetStringValue()
		}
	}
	rc.mu.Unlock()
	if service != "tg-e2e" {
		t.Errorf("service.name = %q, want tg-e2e", service)
	}
}

// assertNoSecretsInSpans: no span name, attribute or event holds any of secrets.
func assertNoSecretsInSpans(t *testing.T, spans []*tracepb.Span, secrets ...string) {
	t.Helper()
	for _, s := range spans {
		texts := []string{s.Name}
		for _, kv := range s.Attributes {
			texts = append(texts, kv.Key+"="+kv.Value.String())
		}
		for _, ev := range s.Events {
			texts = append(texts, ev.Name)
			for _, kv := range ev.Attributes {
				texts = append(texts, kv.Key+"="+kv.Value.String())
			}
		}
		for _, text := range texts {
			for _, secret := range secrets {
				if secret != "" && strings.Contains(text, secret) {
					t.Errorf("span %q holds %q: %s", s.Name, secret, text)
				}
			}
		}
	}
}

// TestTracingE2ESampling: sampling is parent-based. With sample_ratio 0 a
// sampled incoming traceparent is still recorded; an unsampled one records
// nothing (and is still propagated, unsampled, with the same trace id).
func TestTracingE2ESampling(t *testing.T) {
	rc := newOTLPReceiver(t)
	idp, orders, g := tracingGateway(t, rc, "0")
	umbrella := idp.mint(t, map[string]any{"sub": "user-1", "aud": audOrders, "scope": "orders:read"})

	unsampled := strings.Repeat("b", 32)
	if s := send(t, g, "/orders/1", umbrella, map[string]string{"traceparent": "00-" + unsampled + "-" + clientSpanID + "-00"}); s != 200 {
		t.Fatalf("status %d", s)
	}
	if tp := orders.received()[0].Header.Get("traceparent"); !strings.HasPrefix(tp, "00-"+unsampled+"-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("unsampled traceparent not propagated: %q", tp)
	}
	if s := send(t, g, "/orders/2", umbrella, map[string]string{"traceparent": "00-" + clientTraceID + "-" + clientSpanID + "-01"}); s != 200 {
		t.Fatalf("status %d", s)
	}
	waitTrace(t, g, rc, clientTraceID, 3)
	// Spans are exported in the order they end: the unsampled request's
	// would have come first.
	if spans := rc.trace(unsampled); len(spans) != 0 {
		t.Errorf("an unsampled traceparent was recorded: %v", spanNames(spans))
	}
	// A new trace at ratio 0: nothing recorded, and the upstream learns it
	// is not sampled (a new trace id, flag 00).
	send(t, g, "/orders/3", umbrella, nil)
	if tp := orders.received()[2].Header.Get("traceparent"); len(tp) != 55 || !strings.HasSuffix(tp, "-00") || strings.Contains(tp, clientTraceID) {
		t.Errorf("a new unsampled trace reached the upstream with traceparent %q", tp)
	}
	if s := send(t, g, "/orders/4", umbrella, map[string]string{"traceparent": "00-" + strings.Repeat("c", 32) + "-" + clientSpanID + "-01"}); s != 200 {
		t.Fatalf("status %d", s)
	}
	waitTrace(t, g, rc, strings.Repeat("c", 32), 3)
	for _, s := range rc.all() {
		if id := fmt.Sprintf("%x", s.TraceId); id != clientTraceID && id != strings.Repeat("c", 32) {
			t.Errorf("a new trace was recorded at sample_ratio 0: %s %s", id, s.Name)
		}
	}
}

// TestTracingE2EOffPassesTraceparent: with tracing off, the client's
// traceparent and tracestate reach the upstream unchanged.
func TestTracingE2EOffPassesTraceparent(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2E(t, idp, orders, inventory)
	if g.srv.proc.Telemetry.Enabled() {
		t.Fatal("tracing on without an endpoint")
	}
	umbrella := idp.mint(t, map[string]any{"sub": "user-1", "aud": audOrders, "scope": "orders:read"})
	tp := "00-" + clientTraceID + "-" + clientSpanID + "-01"
	if s := send(t, g, "/orders/1", umbrella, map[string]string{"traceparent": tp, "tracestate": "vendor=opaque"}); s != 200 {
		t.Fatalf("status %d", s)
	}
	got := orders.received()[0].Header
	if got.Get("traceparent") != tp || got.Get("tracestate") != "vendor=opaque" {
		t.Errorf("backend traceparent %q tracestate %q, want them unchanged", got.Get("traceparent"), got.Get("tracestate"))
	}
}

// TestTracingE2EExporterDown: a collector that is down fails no request,
// is logged, and does not hold the exit up.
func TestTracingE2EExporterDown(t *testing.T) {
	rc := newOTLPReceiver(t)
	rc.srv.Close() // nothing listens there any more
	idp, _, g := tracingGateway(t, rc, "1.0")
	umbrella := idp.mint(t, map[string]any{"sub": "user-1", "aud": audOrders, "scope": "orders:read"})
	for i := range 3 {
		if s := send(t, g, fmt.Sprintf("/orders/%d", i), umbrella, nil); s != 200 {
			t.Fatalf("request %d: status %d with the collector down", i, s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	g.srv.proc.Telemetry.ForceFlush(ctx)
	if !strings.Contains(g.logs.String(), "spans could not be exported") {
		t.Errorf("the export failure was not logged:\n%s", g.logs.String())
	}
	done := make(chan error, 1)
	go func() { done <- g.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("shutdown held up by the collector being down")
	}
}

// TestTracingE2EExemplar: tokengate_request_duration_seconds carries the
// sampled request's trace id as an exemplar, in the OpenMetrics format.
func TestTracingE2EExemplar(t *testing.T) {
	rc := newOTLPReceiver(t)
	idp, _, g := tracingGateway(t, rc, "1.0")
	umbrella := idp.mint(t, map[string]any{"sub": "user-1", "aud": audOrders, "scope": "orders:read"})
	if s := send(t, g, "/orders/1", umbrella, map[string]string{"traceparent": "00-" + clientTraceID + "-" + clientSpanID + "-01"}); s != 200 {
		t.Fatalf("status %d", s)
	}
	req, _ := http.NewRequest(http.MethodGet, g.srv.AdminURL()+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Fatalf("Content-Type %q, want OpenMetrics", ct)
	}
	found := false
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, `tokengate_request_duration_seconds_bucket{route="orders"`) &&
			strings.Contains(line, `# {trace_id="`+clientTraceID+`"}`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no exemplar with trace_id %s on tokengate_request_duration_seconds:\n%s", clientTraceID,
			metricLines(string(body), "tokengate_request_duration_seconds"))
	}
}

func metricLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
