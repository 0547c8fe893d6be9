package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/gateway"
)

// process holds what lives as long as the process, across configuration
// reloads: the metrics registry and every collector (a registry refuses the
// same name twice), the HTTP client for IdP fetches, and the cache key secret
// (so a reload keeps the cache warm).
type process struct {
	logger      *slog.Logger
	reg         *prometheus.Registry
	gwMetrics   *gateway.Metrics
	exMetrics   *exchange.Metrics
	cacheMetric *cache.Metrics
	reloads     *prometheus.CounterVec
	reloadState *reloadGauges
	httpClient  *http.Client
	clock       func() time.Time
	cacheSecret []byte
	denylist    *cache.Denylist
	draining    atomic.Bool

	// replayMetrics count DPoP replay store failures (docs/dpop.md).
	replayMetrics *cache.ReplayMetrics
}

func newProcess(logger *slog.Logger) (*process, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	f := promauto.With(reg)
	v, _ := buildVersion()
	f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokengate_build_info",
		Help: "Build information; the value is always 1.",
	}, []string{"version", "goversion"}).WithLabelValues(v, runtime.Version()).Set(1)
	reloads := f.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_config_reloads_total",
		Help: "Configuration reloads, by result (ok, error).",
	}, []string{"result"})
	// Both series exist from the start, so alerts on errors see a zero.
	reloads.WithLabelValues("ok")
	reloads.WithLabelValues("error")

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("cache key secret: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 4
	return &process{
		logger:      logger,
		reg:         reg,
		gwMetrics:   gateway.NewMetrics(reg),
		exMetrics:   exchange.NewMetrics(reg),
		cacheMetric: cache.NewMetrics(reg),
		reloads:     reloads,
		reloadState: newReloadGauges(f),
		// Each fetch also carries its own context deadline (issuers[].fetch_timeout);
		// this is the outer bound.
		httpClient:  &http.Client{Transport: transport, Timeout: 30 * time.Second},
		clock:       time.Now,
		cacheSecret: secret,
		denylist:    cache.NewDenylist(time.Now),

		replayMetrics: cache.NewReplayMetrics(reg),
	}, nil
}

// generation is everything built from one configuration. A reload builds a
// new generation and swaps it in whole; the old one finishes its in-flight
// requests and is then closed.
type generation struct {
	cfg      *config.Config
	verifier *exchange.Verifier
	keys     *exchange.KeySet // nil in remote mode
	memory   *cache.Memory
	redis    *redisTier // nil without cache.redis
	edge     *gateway.Gateway
	admin    http.Handler

	// dpopMemory is the DPoP replay memory, handed on across reloads.
	dpopMemory *cache.MemoryReplay
}

// close releases what the generation holds beyond its gateway (the Redis
// client and its listener).
func (g *generation) close() { g.redis.close() }

// buildGeneration wires config → verifier, signer, cache, exchanger, gateway.
// prev, when non-nil, donates its memory tier if the
// bound is unchanged: cache keys cover the exchanger (signing key or STS
// settings), the audience and the
// scopes, so entries made under the old configuration can never be served
// for a changed policy.
func buildGeneration(ctx context.Context, p *process, cfg *config.Config, prev *generation) (*generation, error) {
	up, err := buildUpstream(p, cfg)
	if err != nil {
		return nil, err
	}
	verifier, err := exchange.NewVerifier(cfg.Issuers, exchange.VerifierOptions{
		HTTPClient:    p.httpClient,
		Logger:        p.logger,
		Metrics:       p.exMetrics,
		Clock:         p.clock,
		MaxTokenBytes: cfg.Server.MaxTokenBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("issuers: %w", err)
	}
	var memory *cache.Memory
	if prev != nil && prev.cfg.Cache.MaxEntries == cfg.Cache.MaxEntries {
		memory = prev.memory
	} else if memory, err = cache.NewMemory(cfg.Cache.MaxEntries, p.clock, p.cacheMetric); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	// With Redis, every replica must compute the same cache key for the same
	// umbrella token: the key secret comes from cache.redis's hash key.
	var store exchange.Cache = memory
	keySecret := p.cacheSecret
	var shared *redisTier
	if cfg.Cache.Redis != nil {
		if shared, err = newRedisTier(p, cfg, memory); err != nil {
			return nil, err
		}
		store, keySecret = shared.tiered, shared.keys.CacheKeySecret()
	}
	caching, err := exchange.NewCaching(up.upstream, exchange.CachingOptions{
		Cache:         store,
		RefreshBefore: cfg.Cache.RefreshBefore.D(),
		KeySecret:     keySecret,
		Clock:         p.clock,
		Logger:        p.logger,
		Denylist:      p.denylist,
		RevocationTTL: cfg.Cache.RevocationTTL.D(),
		Revocations:   p.cacheMetric.Revocations,
	})
	if err != nil {
		shared.close()
		return nil, fmt.Errorf("cache: %w", err)
	}
	dpopOpts, dpopMemory, err := buildDPoP(p, cfg, prev, shared, keySecret)
	if err != nil {
		shared.close()
		return nil, err
	}
	txn, err := buildTxnMinter(p, cfg, up)
	if err != nil {
		shared.close()
		return nil, err
	}
	edge, err := gateway.New(gateway.Options{
		Config:    cfg,
		Verifier:  verifier,
		Exchanger: caching,
		Logger:    p.logger,
		Metrics:   p.gwMetrics,
		Clock:     p.clock,
		DPoP:      dpopOpts,
		TxnMinter: txn,
	})
	if err != nil {
		shared.close()
		return nil, fmt.Errorf("routes: %w", err)
	}
	// Fetch every issuer's keys now, so the first requests do not wait on the
	// IdP. A failure is not fatal: /readyz reports it and requests retry.
	fetchCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := verifier.Prefetch(fetchCtx); err != nil {
		p.logger.Warn("issuer keys not available yet; /readyz reports not ready until they are", "error", err)
	}
	if err := up.prefetch(fetchCtx); err != nil {
		p.logger.Warn("the STS's metadata is not available yet; /readyz reports not ready until it is", "error", err)
	}
	cancel()

	g := &generation{cfg: cfg, verifier: verifier, keys: up.keys, memory: memory, redis: shared, edge: edge}
	g.dpopMemory = dpopMemory
	admin := gateway.AdminOptions{
		AdminToken: cfg.Server.AdminToken,
		Revoker:    caching,
		Gatherer:   p.reg,
		Checks:     append(g.readinessChecks(p), up.checks...),
		Issuer:     up.issuer,
		// server.public_url + token_endpoint_path, else derived from listen; "" omits it.
		TokenEndpoint: cfg.Server.TokenEndpointURL(),
		Logger:        p.logger,
		BodyTimeout:   cfg.Server.BodyTimeout.D(),
	}
	if up.keys != nil {
		admin.JWKS, admin.Algorithms = up.keys.PublicJWKSJSON(), up.keys.Algorithms()
	}
	g.admin = gateway.NewAdmin(admin)
	return g, nil
}

// readinessChecks are what /readyz runs: the process is not shutting down,
// and every issuer's keys are usable. Configuration and signing keys were
// checked when this generation was built; it would not exist otherwise.
func (g *generation) readinessChecks(p *process) []gateway.ReadinessCheck {
	checks := []gateway.ReadinessCheck{
		{Name: "shutdown", Check: func(context.Context) error {
			if p.draining.Load() {
				return fmt.Errorf("shutting down")
			}
			return nil
		}},
		{Name: "issuer_keys", Check: g.verifier.Ready},
	}
	if g.redis != nil {
		checks = append(checks, g.redis.readiness())
	}
	return checks
}

// newLogger makes the process logger: JSON by default, text for people.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.Format, "text") {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// listen binds addr unless a listener was handed in (tests and the demo bind
// 127.0.0.1:0 first and learn the port).
func listen(ln net.Listener, addr string) (net.Listener, error) {
	if ln != nil {
		return ln, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, nil
}
