// Package server is tokengate's ONE build path: it turns a validated
// *config.Config into the running components (verifier, key sets, signer or
// STS client, caches, exchanger, gateway, admin handler, TLS certificate)
// with a cleanup stack. `serve`, a reload, `check`, `check --explain` and
// `demo` all build through Build, so they can never disagree on what a
// configuration means or which files it can load: `check` refuses exactly
// what `serve` refuses. The package knows nothing of listeners or request
// handling; cmd/tokengate binds and serves what it builds.
package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/gateway"
	"github.com/tokengate/tokengate/internal/telemetry"
)

// Process holds what lives as long as the process, across configuration
// reloads: the collectors (a registry refuses the same name twice), the HTTP
// client for IdP and STS fetches, the cache key secret (so a reload keeps
// the cache warm), the revocation denylist, the draining flag that
// /readyz reports, and the tracer provider (tracing is process-wide: its
// settings take effect at start; a reload keeps it, see TracingChanged).
type Process struct {
	Logger          *slog.Logger
	Registry        *prometheus.Registry
	GatewayMetrics  *gateway.Metrics
	ExchangeMetrics *exchange.Metrics
	CacheMetrics    *cache.Metrics
	// ReplayMetrics count DPoP replay store failures (docs/dpop.md).
	ReplayMetrics *cache.ReplayMetrics
	HTTPClient    *http.Client
	Clock         func() time.Time
	Denylist      *cache.Denylist
	// Draining is set when shutdown begins: /readyz fails from then on.
	Draining atomic.Bool
	// TLSReloads counts TLS file reloads by file_kind (server_certificate,
	// upstream_client_certificate, upstream_ca) and result (ok, error).
	TLSReloads *prometheus.CounterVec
	// Telemetry is the tracer provider (off when tracing is not configured);
	// Shutdown flushes it.
	Telemetry *telemetry.Provider

	cacheSecret     []byte
	tlsPollInterval time.Duration
}

// ProcessOptions vary NewProcess; zero values are the production choices.
type ProcessOptions struct {
	// HTTPClient fetches keys, metadata and exchanges; nil makes one.
	HTTPClient *http.Client
	// Clock is nil for time.Now.
	Clock func() time.Time
	// TLSPollInterval is how often TLS files are checked for a rotation
	// (0 => DefaultTLSPollInterval).
	TLSPollInterval time.Duration
	// Tracing are the tracing keys of the configuration the process starts
	// with; the zero value (no endpoint) is tracing off unless the OTEL_*
	// variables name a collector.
	Tracing config.Tracing
	// Telemetry varies the tracer provider (tests: a short batch timeout).
	Telemetry telemetry.Options
}

// NewProcess registers the build's collectors on reg (which the caller
// creates, with its own process-level collectors).
func NewProcess(logger *slog.Logger, reg *prometheus.Registry, opts ProcessOptions) (*Process, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("cache key secret: %w", err)
	}
	client := opts.HTTPClient
	if client == nil {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = 4
		// Each fetch also carries its own context deadline
		// (issuers[].fetch_timeout); this is the outer bound.
		client = &http.Client{Transport: transport, Timeout: 30 * time.Second}
	}
	tel, err := telemetry.New(context.Background(), opts.Tracing, logger, opts.Telemetry)
	if err != nil {
		return nil, err
	}
	if tel.Enabled() {
		// A CLIENT span for every IdP, JWKS, introspection and STS call.
		traced := *client
		traced.Transport = tel.Transport("", client.Transport)
		client = &traced
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	poll := opts.TLSPollInterval
	if poll <= 0 {
		poll = DefaultTLSPollInterval
	}
	return &Process{
		TLSReloads:      newTLSReloads(reg),
		tlsPollInterval: poll,
		Logger:          logger,
		Registry:        reg,
		GatewayMetrics:  gateway.NewMetrics(reg),
		ExchangeMetrics: exchange.NewMetrics(reg),
		CacheMetrics:    cache.NewMetrics(reg),
		ReplayMetrics:   cache.NewReplayMetrics(reg),
		HTTPClient:      client,
		Clock:           clock,
		Denylist:        cache.NewDenylist(clock),
		Telemetry:       tel,
		cacheSecret:     secret,
	}, nil
}

// newTLSReloads registers tokengate_tls_reloads_total, every series at zero
// so an alert on errors sees a zero before the first rotation.
func newTLSReloads(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_tls_reloads_total",
		Help: "TLS file reloads after a change on disk, by file_kind (server_certificate, upstream_client_certificate, upstream_ca) and result (ok, error: the previous file stays in use).",
	}, []string{"file_kind", "result"})
	reg.MustRegister(c)
	for _, k := range []string{kindServerCert, kindUpstreamCert, kindUpstreamCA} {
		c.WithLabelValues(k, "ok")
		c.WithLabelValues(k, "error")
	}
	return c
}

// Shutdown flushes the spans still queued and stops the exporter, within
// ctx: a collector that is down does not hold the exit up.
func (p *Process) Shutdown(ctx context.Context) error {
	if err := p.Telemetry.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	return nil
}

// TracingChanged reports whether cfg's tracing keys differ from those the
// process started with: they take effect only after a restart.
func (p *Process) TracingChanged(cfg *config.Config) bool {
	return cfg.Tracing != p.Telemetry.Settings()
}
