package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokengate/tokengate/config"
)

// TestSampledHandlerDecidesAsTheSDK: the decision made before otelhttp is
// the SDK's ratio decision on the very trace id the server span gets, so a
// new trace is recorded exactly when TraceIDRatioBased samples its id; an
// unsampled new trace carries a traceparent with its id and flag 00, and
// an unsampled client traceparent passes through unchanged.
func TestSampledHandlerDecidesAsTheSDK(t *testing.T) {
	p := newSamplingProvider(t, 0.5)
	ratio := sdktrace.TraceIDRatioBased(0.5)
	type seen struct {
		recording bool
		sc        trace.SpanContext
		header    string
	}
	var last seen
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		span := trace.SpanFromContext(r.Context())
		last = seen{span.IsRecording(), trace.SpanContextFromContext(r.Context()), r.Header.Get("traceparent")}
	}))
	var sampledN, droppedN int
	for range 200 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
		tid := last.sc.TraceID()
		want := ratio.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: tid}).Decision == sdktrace.RecordAndSample
		if last.recording != want || last.sc.IsSampled() != want {
			t.Fatalf("trace %s: recording %v sampled %v, the ratio sampler says %v", tid, last.recording, last.sc.IsSampled(), want)
		}
		if want {
			sampledN++
			continue
		}
		droppedN++
		if want := "00-" + tid.String() + "-" + last.sc.SpanID().String() + "-00"; last.header != want {
			t.Fatalf("unsampled new trace %s carries traceparent %q", tid, last.header)
		}
	}
	if sampledN == 0 || droppedN == 0 {
		t.Fatalf("200 new traces at 0.5: %d sampled, %d not", sampledN, droppedN)
	}

	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	req := httptest.NewRequest(http.MethodGet, "/x", nil)
	req.Header.Set("traceparent", in)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if last.recording || last.header != in || last.sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("unsampled parent: recording %v, traceparent %q, trace %s", last.recording, last.header, last.sc.TraceID())
	}
}

// TestSampledHandlerExtractsOnlyWhatIsSent: the propagator runs only when
// a traceparent or baggage header came, and a client's sampled traceparent
// is continued even where the ratio samples no new trace (parent-based).
func TestSampledHandlerExtractsOnlyWhatIsSent(t *testing.T) {
	p := newSamplingProvider(t, 0)
	var recording bool
	var sc trace.SpanContext
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		recording, sc = trace.SpanFromContext(r.Context()).IsRecording(), trace.SpanContextFromContext(r.Context())
	}))
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name      string
		header    map[string]string
		recording bool
		trace     string // "" = a new trace
	}{
		{"nothing sent", nil, false, ""},
		{"sampled parent", map[string]string{"traceparent": "00-" + clientTrace + "-00f067aa0ba902b7-01"}, true, clientTrace},
		{"unsampled parent", map[string]string{"traceparent": "00-" + clientTrace + "-00f067aa0ba902b7-00"}, false, clientTrace},
		{"baggage alone", map[string]string{"baggage": "tenant=a"}, false, ""},
	} {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if recording != tc.recording || !sc.IsValid() {
			t.Errorf("%s: recording %v (want %v), span context valid %v", tc.name, recording, tc.recording, sc.IsValid())
		}
		if got := sc.TraceID().String(); (tc.trace != "" && got != tc.trace) || (tc.trace == "" && got == clientTrace) {
			t.Errorf("%s: trace %s, want %q (\"\" = new)", tc.name, got, tc.trace)
		}
	}
}

// newSamplingProvider is a provider sampling new traces at ratio, exporting
// to a receiver that discards.
func newSamplingProvider(t *testing.T, ratio float64) *Provider {
	t.Helper()
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	t.Cleanup(collector.Close)
	p, err := New(context.Background(), config.Tracing{OTLPEndpoint: collector.URL, SampleRatio: ratio, ServiceName: "t"}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}
