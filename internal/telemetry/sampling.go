package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The sampling decision is made before any instrumentation runs, so a
// request that is not sampled pays for none of it (otelhttp computes a
// span's attributes before its sampler decides, and wraps the response
// writer, the body and the upstream request even for a span that records
// nothing). The decision is the SDK's own: the same parent-based ratio
// sampler, on the trace id the server span will have (idGenerator hands
// it over), so a sampled request is traced exactly as otelhttp alone
// would trace it.
//
// An unsampled request keeps the trace's identity downstream: a client's
// unsampled traceparent passes through to the upstream as it came (W3C
// allows forwarding it unchanged), and a new trace that is not sampled
// gets a traceparent with its new trace id and the sampled flag off, so
// services behind the gateway do not sample it either.

type traceIDKey struct{}

// idGenerator is the SDK's ID generator: random ids, except that a root
// span takes the trace id the sampling decision was made on.
type idGenerator struct{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	tid, ok := ctx.Value(traceIDKey{}).(trace.TraceID)
	if !ok {
		tid = newTraceID()
	}
	return tid, newSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newTraceID() trace.TraceID {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid
}

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// sampledHandler runs traced (otelhttp around h) for a sampled request and
// h itself, with an unsampled span context, for the others.
func (p *Provider) sampledHandler(h, traced http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := p.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		if parent := trace.SpanContextFromContext(ctx); parent.IsValid() {
			if parent.IsSampled() {
				traced.ServeHTTP(w, r)
				return
			}
			// The client's traceparent passes through, unsampled.
			h.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		tid := newTraceID()
		decision := p.sampler.ShouldSample(sdktrace.SamplingParameters{
			ParentContext: ctx, TraceID: tid, Name: r.Method, Kind: trace.SpanKindServer,
		})
		if decision.Decision == sdktrace.RecordAndSample {
			traced.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), traceIDKey{}, tid)))
			return
		}
		sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: newSpanID(), Remote: true})
		r.Header.Set("Traceparent", "00-"+tid.String()+"-"+sc.SpanID().String()+"-00")
		h.ServeHTTP(w, r.WithContext(trace.ContextWithRemoteSpanContext(ctx, sc)))
	})
}

// sampledTransport sends a sampled request's round trip through traced
// (otelhttp around bare) and the others through bare: their traceparent,
// if any, is the incoming request's, unsampled.
type sampledTransport struct {
	traced, bare http.RoundTripper
}

func (t sampledTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if trace.SpanContextFromContext(r.Context()).IsSampled() {
		return t.traced.RoundTrip(r)
	}
	return t.bare.RoundTrip(r)
}
