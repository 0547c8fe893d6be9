// Package telemetry is tokengate's OpenTelemetry tracing: one process-wide
// tracer provider exporting over OTLP/HTTP, and the wrappers that put spans
// around handlers and HTTP clients (otelhttp) the way otelhttp and Envoy do,
// so no span code runs through the gateway's logic. Nothing here is global:
// the provider and the W3C propagator are passed explicitly to every
// wrapper, and otel.SetTracerProvider is never called.
//
// Telemetry never fails a request: an exporter that is down drops spans and
// logs it (rate-limited), and no span ever holds a token, an Authorization
// value or a query string (redact.go).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tokengate/tokengate/config"
)

// Instrumentation scope of tokengate's own spans.
const scopeName = "github.com/tokengate/tokengate"

// Defaults of the exporter: short, so a collector that is down costs little.
const (
	defaultBatchTimeout  = config.DefaultTracingBatchTimeout
	defaultExportTimeout = config.DefaultTracingExportTimeout
	retryMaxElapsed      = 10 * time.Second
)

// Options vary New; zero values are the production choices.
type Options struct {
	// Getenv reads OTEL_* variables; nil is os.Getenv.
	Getenv func(string) string
	// BatchTimeout is how long spans wait before export; 0 is 5s.
	BatchTimeout time.Duration
}

// Provider is the process's tracing: a real SDK tracer provider when
// tracing is on, a no-op one when it is off (then every wrapper returns
// what it was given, and traceparent headers pass through untouched).
type Provider struct {
	settings config.Tracing
	sdk      *sdktrace.TracerProvider // nil when off
	tp       trace.TracerProvider
	prop     propagation.TextMapPropagator
	sampler  sdktrace.Sampler // decides before the instrumentation (sampling.go)
}

// Off is a provider with tracing off.
func Off() *Provider {
	return &Provider{tp: noop.NewTracerProvider(), prop: propagator()}
}

// propagator is W3C Trace Context and Baggage.
func propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// New makes the provider from the tracing keys and the OTEL_* variables
// (docs/tracing.md). Tracing is off when no endpoint is configured either
// way, or OTEL_SDK_DISABLED is true.
func New(ctx context.Context, cfg config.Tracing, logger *slog.Logger, opts Options) (*Provider, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		p := Off()
		p.settings = cfg
		return p, nil
	}
	exporterOpts := []otlptracehttp.Option{
		otlptracehttp.WithTimeout(defaultExportTimeout),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
			Enabled: true, InitialInterval: time.Second, MaxInterval: 5 * time.Second, MaxElapsedTime: retryMaxElapsed,
		}),
	}
	switch {
	case cfg.OTLPEndpoint != "":
		// The key wins over the variables.
		exporterOpts = append(exporterOpts, otlptracehttp.WithEndpointURL(cfg.TracesURL()))
	case getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "":
		// The exporter reads them itself, as the specification says: the
		// traces variable is the full URL, the other a base URL.
	default:
		p := Off()
		p.settings = cfg
		return p, nil
	}
	exp, err := otlptracehttp.New(ctx, exporterOpts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithFromEnv(), // OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
		resource.WithTelemetrySDK(),
		// Last, so tracing.service_name wins over OTEL_SERVICE_NAME.
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	batch := opts.BatchTimeout
	if batch <= 0 {
		batch = defaultBatchTimeout
	}
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		sdktrace.WithIDGenerator(idGenerator{}),
		sdktrace.WithBatcher(newSafeExporter(exp, logger), sdktrace.WithBatchTimeout(batch)),
	)
	return &Provider{settings: cfg, sdk: sdk, tp: sdk, prop: propagator(), sampler: sampler}, nil
}

// Enabled reports whether spans are recorded and exported.
// A nil provider is off.
func (p *Provider) Enabled() bool { return p != nil && p.sdk != nil }

// Settings are the tracing keys the provider was made from: a reload
// compares them, since the provider lives as long as the process.
func (p *Provider) Settings() config.Tracing {
	if p == nil {
		return config.Tracing{}
	}
	return p.settings
}

// TracerProvider is the provider to pass to instrumentation.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return noop.NewTracerProvider()
	}
	return p.tp
}

// Propagator is W3C Trace Context and Baggage.
func (p *Provider) Propagator() propagation.TextMapPropagator { return p.prop }

// Tracer is tokengate's tracer for its own spans.
func (p *Provider) Tracer() trace.Tracer { return p.TracerProvider().Tracer(scopeName) }

// Shutdown flushes the spans still queued and stops the exporter. ctx
// bounds it: a collector that is down does not hold the exit up.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// ForceFlush exports the spans still queued.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// Handler puts a SERVER span around h (the edge listener). Its name is the
// method until the gateway names it by route when the request ends
// (gateway.Gateway's finish). An unsampled request skips the
// instrumentation (sampling.go). With tracing off, h itself.
func (p *Provider) Handler(h http.Handler) http.Handler {
	if !p.Enabled() {
		return h
	}
	return p.sampledHandler(h, otelhttp.NewHandler(h, "tokengate",
		otelhttp.WithTracerProvider(p.tp),
		otelhttp.WithPropagators(p.prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		// Never the path: it is unbounded, and may hold what it should not.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
	))
}

// Transport puts a CLIENT span around every round trip of rt and injects
// traceparent (replacing the client's, which the span continues). name
// says whom it calls (a route's name): spans are named "METHOD name", or
// "METHOD host" when name is "" (the IdP and STS client, whose hosts come
// from the configuration). A round trip outside a sampled trace skips the
// instrumentation. With tracing off, rt itself.
func (p *Provider) Transport(name string, rt http.RoundTripper) http.RoundTripper {
	if !p.Enabled() {
		return rt
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	return sampledTransport{bare: rt, traced: otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(p.tp),
		otelhttp.WithPropagators(p.prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if name == "" {
				return r.Method + " " + r.URL.Host
			}
			return r.Method + " " + name
		}),
	)}
}
