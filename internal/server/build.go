package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/gateway"
)

// Options vary one Build.
type Options struct {
	// Offline builds everything and starts nothing: no key or metadata
	// prefetch, no Redis revocation listener, so nothing is dialled.
	// `check` and `check --explain` build offline: a fresh check must not
	// need the IdP, the STS or Redis reachable.
	Offline bool
	// Verifier, when set, wraps the verifier the gateway decides with
	// (`check --explain --no-verify` skips the signature).
	Verifier func(*exchange.Verifier) gateway.Verifier
}

// Generation is everything built from one configuration. A reload builds a
// new generation, swaps it in whole, and then closes the old one, whose
// in-flight requests finish on their own references.
type Generation struct {
	cfg      *config.Config
	verifier *exchange.Verifier
	local    *exchange.Local // nil in remote mode
	memory   *cache.Memory
	edge     *gateway.Gateway
	handler  http.Handler // edge, in a server span when tracing is on
	admin    http.Handler
	tls      *tls.Config // nil without server.tls

	// dpopMemory is the DPoP replay memory, handed on across reloads.
	dpopMemory *cache.MemoryReplay
	cleanup    cleanupStack
}

// Config is the configuration the generation was built from.
func (g *Generation) Config() *config.Config { return g.cfg }

// Edge is the edge listener's handler (routes and the token endpoint).
func (g *Generation) Edge() *gateway.Gateway { return g.edge }

// Handler is the edge listener's handler: Edge, with a SERVER span per
// request when tracing is on (the admin listener has none).
func (g *Generation) Handler() http.Handler { return g.handler }

// Admin is the admin listener's handler.
func (g *Generation) Admin() http.Handler { return g.admin }

// Verifier is the umbrella token verifier.
func (g *Generation) Verifier() *exchange.Verifier { return g.verifier }

// Local is the local signer; nil in remote mode.
func (g *Generation) Local() *exchange.Local { return g.local }

// TLS is the edge listener's TLS configuration (server.tls, its
// certificate loaded); nil without server.tls.
func (g *Generation) TLS() *tls.Config { return g.tls }

// Close releases what the generation holds, last built first: the
// gateway's idle upstream connections, then the Redis client and its
// listener. Safe to call twice.
func (g *Generation) Close() { g.cleanup.run() }

// cleanupStack runs its functions once, in reverse order.
type cleanupStack struct{ fns []func() }

func (s *cleanupStack) push(f func()) { s.fns = append(s.fns, f) }

func (s *cleanupStack) run() {
	for i := len(s.fns) - 1; i >= 0; i-- {
		s.fns[i]()
	}
	s.fns = nil
}

// Build wires a validated configuration into a generation: TLS
// certificate, exchanger (local signer or STS client), verifier, cache
// tiers, DPoP, Txn-Token minter, gateway and admin handler. Every file the
// configuration names is loaded here, so a file that `serve` cannot use
// fails `check` too, with its key path. On error everything built so far is
// released.
//
// prev, when non-nil, donates its memory tiers if their bounds are
// unchanged: cache keys cover the exchanger (signing key or STS settings),
// the audience and the scopes, so entries made under the old configuration
// can never be served for a changed policy.
func Build(ctx context.Context, p *Process, cfg *config.Config, prev *Generation, opts Options) (_ *Generation, err error) {
	g := &Generation{cfg: cfg}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	if g.tls, err = loadTLS(cfg.Server.TLS); err != nil {
		return nil, err
	}
	up, err := buildUpstream(p, cfg)
	if err != nil {
		return nil, err
	}
	if l, ok := up.upstream.(*exchange.Local); ok {
		g.local = l
	}
	g.verifier, err = exchange.NewVerifier(cfg.Issuers, exchange.VerifierOptions{
		HTTPClient:    p.HTTPClient,
		Logger:        p.Logger,
		Metrics:       p.ExchangeMetrics,
		Clock:         p.Clock,
		MaxTokenBytes: cfg.Server.MaxTokenBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("issuers: %w", err)
	}
	if prev != nil && prev.cfg.Cache.MaxEntries == cfg.Cache.MaxEntries {
		g.memory = prev.memory
	} else if g.memory, err = cache.NewMemory(cfg.Cache.MaxEntries, p.Clock, p.CacheMetrics); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	// With Redis, every replica must compute the same cache key for the same
	// umbrella token: the key secret comes from cache.redis's hash key.
	var store exchange.Cache = g.memory
	keySecret := p.cacheSecret
	var shared *redisTier
	if cfg.Cache.Redis != nil {
		if shared, err = newRedisTier(p, cfg, g.memory, !opts.Offline); err != nil {
			return nil, err
		}
		g.cleanup.push(shared.close)
		store, keySecret = shared.tiered, shared.keys.CacheKeySecret()
	}
	caching, err := exchange.NewCaching(up.upstream, exchange.CachingOptions{
		Cache:         store,
		RefreshBefore: cfg.Cache.RefreshBefore.D(),
		KeySecret:     keySecret,
		Clock:         p.Clock,
		Logger:        p.Logger,
		Denylist:      p.Denylist,
		RevocationTTL: cfg.Cache.RevocationTTL.D(),
		Revocations:   p.CacheMetrics.Revocations,
		OpaqueTokens:  g.verifier.Introspects(),
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	var prevReplay *cache.MemoryReplay
	if prev != nil {
		// The same replay memory even when its bound changes: a new one would
		// forget the proofs already seen, and they could be replayed here.
		prevReplay = prev.dpopMemory
	}
	dpopOpts, err := buildDPoP(p, cfg, prevReplay, shared, keySecret)
	if err != nil {
		return nil, err
	}
	g.dpopMemory = dpopOpts.memory
	txn, err := buildTxnMinter(p, cfg, up)
	if err != nil {
		return nil, err
	}
	var verifier gateway.Verifier = g.verifier
	if opts.Verifier != nil {
		verifier = opts.Verifier(g.verifier)
	}
	// A span per step of the decision, around the gateway's interfaces.
	verifier, exchanger, txn := traced(p.Telemetry, verifier, caching, txn)
	g.edge, err = gateway.New(gateway.Options{
		Config:    cfg,
		Verifier:  verifier,
		Exchanger: exchanger,
		Logger:    p.Logger,
		Metrics:   p.GatewayMetrics,
		Clock:     p.Clock,
		DPoP:      dpopOpts.options,
		TxnMinter: txn,
		// Revocation is checked on every verified token, whatever the
		// route forwards, not only where a token is exchanged.
		Revocations: caching,
		// The upstream call is a CLIENT span that carries traceparent.
		WrapTransport: p.Telemetry.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	g.cleanup.push(g.edge.Close)
	g.handler = p.Telemetry.Handler(g.edge)
	if !opts.Offline {
		prefetch(ctx, p, g.verifier, up)
	}
	g.admin = buildAdmin(p, cfg, g, up, caching, shared)
	return g, nil
}

// prefetch fetches every issuer's keys and the STS's metadata now, so the
// first requests do not wait on them. A failure is not fatal: /readyz
// reports it and requests retry.
func prefetch(ctx context.Context, p *Process, verifier *exchange.Verifier, up *modeUpstream) {
	fetchCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := verifier.Prefetch(fetchCtx); err != nil {
		p.Logger.Warn("issuer keys not available yet; /readyz reports not ready until they are", "error", err)
	}
	if err := up.prefetch(fetchCtx); err != nil {
		p.Logger.Warn("the STS's metadata is not available yet; /readyz reports not ready until it is", "error", err)
	}
}

// buildAdmin makes the admin listener's handler: metrics, health, JWKS,
// discovery and revocation.
func buildAdmin(p *Process, cfg *config.Config, g *Generation, up *modeUpstream, caching *exchange.Caching, shared *redisTier) http.Handler {
	admin := gateway.AdminOptions{
		AdminToken: cfg.Server.AdminToken,
		Revoker:    caching,
		Gatherer:   p.Registry,
		Checks:     append(readinessChecks(p, g.verifier, shared), up.checks...),
		Issuer:     up.issuer,
		// server.public_url + token_endpoint_path, else derived from listen; "" omits it.
		TokenEndpoint: cfg.Server.TokenEndpointURL(),
		Logger:        p.Logger,
		BodyTimeout:   cfg.Server.BodyTimeout.D(),
		Degraded:      p.GatewayMetrics.ComponentDegraded,
	}
	if up.keys != nil {
		admin.JWKS, admin.Algorithms = up.keys.PublicJWKSJSON(), up.keys.Algorithms()
	}
	return gateway.NewAdmin(admin)
}

// readinessChecks are what /readyz runs: the process is not shutting down,
// and every issuer's keys are usable. Configuration and signing keys were
// checked when the generation was built; it would not exist otherwise.
func readinessChecks(p *Process, verifier *exchange.Verifier, shared *redisTier) []gateway.ReadinessCheck {
	checks := []gateway.ReadinessCheck{
		{Name: "shutdown", Check: func(context.Context) error {
			if p.Draining.Load() {
				return errors.New("shutting down")
			}
			return nil
		}},
		// One part per issuer: a failed JWKS refresh degrades its issuer at
		// once; /readyz fails only when no issuer can verify anything.
		{Name: "issuer_keys", Parts: verifier.Ready},
	}
	if shared != nil {
		checks = append(checks, shared.readiness())
	}
	return checks
}
