package gateway

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Tracing hooks. Spans are made outside the gateway (internal/server wraps
// the edge handler, the transports and the Verifier / Exchanger / TxnMinter
// in them); the gateway only names what it decided on the request's server
// span, the way it writes the access log, and puts the trace id on the
// duration histogram as an exemplar.

// Attributes of the server span (OpenTelemetry HTTP conventions plus
// tokengate's own): all from the configuration or a closed set of reasons.
const (
	attrHTTPRoute = attribute.Key("http.route")
	attrRoute     = attribute.Key("tokengate.route")
	attrReason    = attribute.Key("tokengate.reason")
)

// upstreamTransport is the round tripper of a route's proxy: its tuned
// transport, wrapped by Options.WrapTransport (a CLIENT span) when set.
func (g *Gateway) upstreamTransport(rt *route) http.RoundTripper {
	if g.wrapTransport == nil {
		return rt.upstream.transport
	}
	return g.wrapTransport(rt.name, rt.upstream.transport)
}

// traceDecision names the request's server span by its route ("GET
// orders", "POST _none") and records the route and the rejection reason.
// The status code and the error status (5xx only) are otelhttp's. Nothing
// here when the span is not recording: tracing off or not sampled.
func traceDecision(ctx context.Context, r *http.Request, obs *routeObservers, st *requestState) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetName(r.Method + " " + obs.name)
	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, attrRoute.String(obs.name))
	if st.route != nil {
		attrs = append(attrs, attrHTTPRoute.String(st.route.match.prefix))
	}
	if st.reason != "" {
		attrs = append(attrs, attrReason.String(st.reason))
	}
	span.SetAttributes(attrs...)
}

// observeDuration observes a request's duration with its trace id as an
// exemplar when its span is sampled (Prometheus exemplars, served in the
// OpenMetrics format), so a slow bucket links to a trace.
func observeDuration(ctx context.Context, o prometheus.Observer, seconds float64) {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		if eo, ok := o.(prometheus.ExemplarObserver); ok {
			eo.ObserveWithExemplar(seconds, prometheus.Labels{"trace_id": sc.TraceID().String()})
			return
		}
	}
	o.Observe(seconds)
}
