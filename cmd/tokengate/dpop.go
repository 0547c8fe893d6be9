package main

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/gateway"
)

// labelDPoPNonce derives the DPoP nonce secret from the cache key secret:
// a key of its own, and the same on every replica that shares cache.redis.
const labelDPoPNonce = "tokengate/dpop/nonce-secret/v1"

// buildDPoP wires DPoP for one generation: the memory replay store (taken
// over from prev, with the new bound, so a reload forgets no proof),
// the Redis replay store when cache.redis is set (so replicas refuse each
// other's replays), and the nonce secret (derived from the cache key secret:
// per process without Redis, shared by every replica with it).
func buildDPoP(p *process, cfg *config.Config, prev *generation, shared *redisTier, keySecret []byte) (gateway.DPoPOptions, *cache.MemoryReplay, error) {
	bound := cfg.Server.DPoP.ReplayMaxEntries
	var mem *cache.MemoryReplay
	if prev != nil && prev.dpopMemory != nil {
		// The same store, even when the bound changes: a new one would
		// forget the proofs already seen, and they could be replayed here.
		mem = prev.dpopMemory
		if err := mem.SetBound(bound); err != nil {
			return gateway.DPoPOptions{}, nil, fmt.Errorf("server.dpop.replay_max_entries: %w", err)
		}
	} else {
		var err error
		if mem, err = cache.NewMemoryReplay(bound, p.clock); err != nil {
			return gateway.DPoPOptions{}, nil, fmt.Errorf("server.dpop: %w", err)
		}
	}
	opts := cache.ReplayGuardOptions{Memory: mem, Metrics: p.replayMetrics, Logger: p.logger, Clock: p.clock}
	if shared != nil {
		opts.Shared, opts.Required = shared.tiered.Redis(), shared.required
	}
	guard, err := cache.NewReplayGuard(opts)
	if err != nil {
		return gateway.DPoPOptions{}, nil, fmt.Errorf("server.dpop: %w", err)
	}
	secret, err := hkdf.Key(sha256.New, keySecret, nil, labelDPoPNonce, 32)
	if err != nil {
		return gateway.DPoPOptions{}, nil, fmt.Errorf("server.dpop: nonce secret: %w", err)
	}
	return gateway.DPoPOptions{Replay: guard, NonceSecret: secret}, mem, nil
}
