package telemetry

import (
	"context"
	"encoding/binary"
	"encoding/hex"
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
		ctx := r.Context()
		if hasPropagation(r.Header) {
			ctx = p.prop.Extract(ctx, propagation.HeaderCarrier(r.Header))
		}
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
		r.Header[headerTraceparent] = []string{unsampledTraceparent(tid, sc.SpanID())}
		h.ServeHTTP(w, r.WithContext(trace.ContextWithRemoteSpanContext(ctx, sc)))
	})
}

// The W3C headers the propagator reads, in net/http's canonical form (as
// every incoming request's header map has them).
const (
	headerTraceparent = "Traceparent"
	headerBaggage     = "Baggage"
)

// hasPropagation reports whether the request carries anything the
// propagator would extract: most requests carry neither header, and the
// Trace Context and Baggage extractors allocate even when there is none.
func hasPropagation(h http.Header) bool {
	return len(h[headerTraceparent]) > 0 || len(h[headerBaggage]) > 0
}

// unsampledTraceparent is the W3C traceparent of a new, unsampled trace
// ("00-<trace id>-<span id>-00"), built in one allocation: it is set on
// every request that is not sampled.
func unsampledTraceparent(tid trace.TraceID, sid trace.SpanID) string {
	var b [3 + 32 + 1 + 16 + 3]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	copy(b[52:], "-00")
	return string(b[:])
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
