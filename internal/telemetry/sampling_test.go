package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer collector.Close()
	p, err := New(context.Background(), config.Tracing{OTLPEndpoint: collector.URL, SampleRatio: 0.5, ServiceName: "t"}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
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
		if !strings.HasPrefix(last.header, "00-"+tid.String()+"-") || !strings.HasSuffix(last.header, "-00") {
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
