package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/gateway"
)

// redisTier is the shared tier of one generation: its client, the tiered
// cache over the generation's memory tier, and the listener that applies
// other replicas' revocations. close releases all of it.
type redisTier struct {
	client   redis.UniversalClient
	keys     *cache.Keyring
	tiered   *cache.Tiered
	required bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
	// peerRevoked, once set (after the generation's verifier and exchanger
	// are built), also sees each revocation from another replica: it drops
	// the introspection cache entry of a revoked opaque token.
	peerRevoked atomic.Pointer[func(cache.Revocation)]
}

// newRedisTier connects cache.redis (lazily: go-redis dials on first use, so
// a Redis that is down does not stop the gateway from starting) and starts
// listening for revocations.
//
// listen starts the listener; an offline build (check) dials nothing.
func newRedisTier(p *Process, cfg *config.Config, memory *cache.Memory, listen bool) (*redisTier, error) {
	rc := cfg.Cache.Redis
	keys, err := cache.NewKeyringFromConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("cache.redis: %w", err)
	}
	client, err := cache.NewRedisClient(rc)
	if err != nil {
		return nil, fmt.Errorf("cache.redis: %w", err)
	}
	if err := traceRedis(p.Telemetry, client); err != nil {
		client.Close()
		return nil, fmt.Errorf("cache.redis: tracing: %w", err)
	}
	r, err := cache.NewRedis(cache.RedisOptions{
		Client:          client,
		Keyring:         keys,
		KeyPrefix:       rc.KeyPrefix,
		RefreshBefore:   cfg.Cache.RefreshBefore.D(),
		Timeout:         rc.DialTimeout.D() + rc.ReadTimeout.D(),
		BreakerFailures: rc.BreakerFailures,
		BreakerBackoff:  rc.BreakerBackoff.D(),
		Clock:           p.Clock,
		Metrics:         p.CacheMetrics,
		Logger:          p.Logger,
	})
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("cache.redis: %w", err)
	}
	tiered, err := cache.NewTiered(memory, r)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("cache.redis: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &redisTier{client: client, keys: keys, tiered: tiered, required: rc.Required, cancel: cancel}
	if listen {
		t.wg.Go(func() {
			tiered.Listen(ctx, func(rev cache.Revocation) {
				p.Denylist.Add(rev)
				if f := t.peerRevoked.Load(); f != nil {
					(*f)(rev)
				}
			})
		})
	}
	return t, nil
}

// readiness is the /readyz check of Redis: optional unless cache.redis.required.
func (t *redisTier) readiness() gateway.ReadinessCheck {
	return gateway.ReadinessCheck{Name: "redis", Check: t.tiered.Redis().Ping, Optional: !t.required}
}

// close stops the listener and closes the client; safe to call twice.
func (t *redisTier) close() {
	if t == nil {
		return
	}
	t.once.Do(func() {
		t.cancel()
		t.wg.Wait()
		t.client.Close()
	})
}
