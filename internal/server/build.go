package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/sign"
	"github.com/tokengate/tokengate/exchange/verify"
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
	Verifier func(*verify.Verifier) gateway.Verifier
}

// Generation is everything built from one configuration. A reload builds a
// new generation, swaps it in whole, and then closes the old one, whose
// in-flight requests finish on their own references.
type Generation struct {
	cfg      *config.Config
	verifier *verify.Verifier
	local    *sign.Local // nil in remote mode
	memory   *cache.Memory
	edge     *gateway.Gateway
	handler  http.Handler // edge, in a server span when tracing is on
	admin    http.Handler
	tls      *tls.Config // nil without server.tls
	// tlsFiles are the TLS files this generation serves with, polled for
	// rotations while it is in use (not in an offline build).
	tlsFiles tlsFiles

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
func (g *Generation) Verifier() *verify.Verifier { return g.verifier }

// Local is the local signer; nil in remote mode.
func (g *Generation) Local() *sign.Local { return g.local }

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
	if g.tls, err = loadTLS(cfg.Server.TLS, &g.tlsFiles); err != nil {
		return nil, err
	}
	upTLS, err := upstreamTLS(cfg.Routes, &g.tlsFiles)
	if err != nil {
		return nil, err
	}
	up, err := buildUpstream(p, cfg)
	if err != nil {
		return nil, err
	}
	if l, ok := up.upstream.(*sign.Local); ok {
		g.local = l
	}
	// The verifier reports keys its issuers removed to the caching
	// exchanger, built after it: until then there is nothing cached to drop.
	var cachingRef atomic.Pointer[exchange.Caching]
	var dropIntrospected atomic.Pointer[func(cache.Revocation)]
	g.verifier, err = verify.NewVerifier(cfg.Issuers, verify.VerifierOptions{
		HTTPClient:    p.HTTPClient,
		Logger:        p.Logger,
		Metrics:       p.ExchangeMetrics,
		Clock:         p.Clock,
		MaxTokenBytes: cfg.Server.MaxTokenBytes,
		Purged:        p.CacheMetrics.Purged,
		OnKeyRemoved: func(issuer, kid string) {
			if c := cachingRef.Load(); c != nil {
				c.KeyRemoved(issuer, kid)
			}
		},
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
	var store cache.Store = g.memory
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
		OnRevoked: func(rev cache.Revocation) {
			if f := dropIntrospected.Load(); f != nil {
				(*f)(rev)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	cachingRef.Store(caching)
	if g.verifier.Introspects() {
		drop := introspectionDropper(p, g.verifier, caching)
		dropIntrospected.Store(&drop)
		if shared != nil {
			shared.peerRevoked.Store(&drop)
		}
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
		UpstreamTLS: upTLS,
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
		g.watchTLS(p)
	}
	g.admin = buildAdmin(p, cfg, g, up, caching, shared)
	if !opts.Offline {
		purgeRemovedSigningKeys(ctx, p, prev, g, caching)
	}
	return g, nil
}

// introspectionDropper returns what a token revocation does to the
// introspection cache: drop the revoked opaque token's answer, so the
// authorization server is asked again (its revocation shows at once rather
// than within max_cache_ttl). The denylist refuses the token either way.
func introspectionDropper(p *Process, v *verify.Verifier, caching *exchange.Caching) func(cache.Revocation) {
	return func(rev cache.Revocation) {
		if rev.By != cache.ByToken {
			return
		}
		n := v.DropIntrospected(func(t *exchange.Token) bool { return caching.RevokedBy(t, rev) })
		if n > 0 {
			p.CacheMetrics.Purged.WithLabelValues(cache.CauseRevoked, "introspection").Add(float64(n))
		}
	}
}

// signingKeyPurgeTimeout bounds dropping the tokens of removed signing keys
// at a reload (Redis included).
const signingKeyPurgeTimeout = 10 * time.Second

// purgeRemovedSigningKeys drops, here, in Redis and on every replica, the
// cached exchanged tokens signed with a key that prev's signing_keys held
// and g's no longer does (an emergency removal). The new generation
// already publishes a JWKS without it; cache keys already cover the active
// key, so this drops what a replica still on the old configuration, or a
// later rotation back, could otherwise be handed.
func purgeRemovedSigningKeys(ctx context.Context, p *Process, prev, g *Generation, caching *exchange.Caching) {
	if prev == nil || prev.local == nil || g.local == nil {
		return
	}
	kept := map[string]bool{}
	for _, k := range g.local.Keys().PublicJWKS().Keys {
		kept[k.KeyID] = true
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signingKeyPurgeTimeout)
	defer cancel()
	for _, k := range prev.local.Keys().PublicJWKS().Keys {
		if kept[k.KeyID] {
			continue
		}
		res, err := caching.SigningKeyRemoved(ctx, k.KeyID)
		if err != nil {
			p.Logger.Error("signing key removed: its cached tokens were dropped on this replica only (Redis could not be told)",
				"kid", k.KeyID, "error", err)
			continue
		}
		p.Logger.Warn("signing key removed: its cached tokens were dropped on every replica",
			"event", "revocation", "kind", "signing_key_removed", "kid", k.KeyID, "entries_dropped", res.Dropped)
	}
}

// watchTLS polls the generation's TLS files until it is closed, so a
// certificate rotated on disk is served without a restart or a reload.
func (g *Generation) watchTLS(p *Process) {
	if len(g.tlsFiles.files) == 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.tlsFiles.watch(ctx, p.tlsPollInterval, p.Logger, p.TLSReloads)
	}()
	g.cleanup.push(func() {
		cancel()
		<-done
	})
}

// prefetch fetches every issuer's keys and the STS's metadata now, so the
// first requests do not wait on them. A failure is not fatal: /readyz
// reports it and requests retry.
func prefetch(ctx context.Context, p *Process, verifier *verify.Verifier, up *modeUpstream) {
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
		AdminToken:     cfg.Server.AdminToken,
		Revoker:        caching,
		TrustedProxies: cfg.Server.TrustedProxies,
		Gatherer:       p.Registry,
		Checks:         append(readinessChecks(p, g.verifier, shared), up.checks...),
		Issuer:         up.issuer,
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
func readinessChecks(p *Process, verifier *verify.Verifier, shared *redisTier) []gateway.ReadinessCheck {
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
