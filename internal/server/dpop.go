package server

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

// dpopBuild is what buildDPoP makes: the gateway's DPoP options, and the
// memory replay store to hand on to the next generation.
type dpopBuild struct {
	options gateway.DPoPOptions
	memory  *cache.MemoryReplay
}

// buildDPoP wires DPoP for one generation: the memory replay store (prev's,
// with the new bound, so a reload forgets no proof), the Redis
// replay store when cache.redis is set (so replicas refuse each other's
// replays), and the nonce secret (derived from the cache key secret: per
// process without Redis, shared by every replica with it).
func buildDPoP(p *Process, cfg *config.Config, prev *cache.MemoryReplay, shared *redisTier, keySecret []byte) (dpopBuild, error) {
	mem := prev
	if mem != nil {
		if err := mem.SetBound(cfg.Server.DPoP.ReplayMaxEntries); err != nil {
			return dpopBuild{}, fmt.Errorf("server.dpop.replay_max_entries: %w", err)
		}
	} else {
		var err error
		if mem, err = cache.NewMemoryReplay(cfg.Server.DPoP.ReplayMaxEntries, p.Clock); err != nil {
			return dpopBuild{}, fmt.Errorf("server.dpop: %w", err)
		}
	}
	opts := cache.ReplayGuardOptions{Memory: mem, Metrics: p.ReplayMetrics, Logger: p.Logger, Clock: p.Clock}
	if shared != nil {
		opts.Shared, opts.Required = shared.tiered.Redis(), shared.required
	}
	guard, err := cache.NewReplayGuard(opts)
	if err != nil {
		return dpopBuild{}, fmt.Errorf("server.dpop: %w", err)
	}
	secret, err := hkdf.Key(sha256.New, keySecret, nil, labelDPoPNonce, 32)
	if err != nil {
		return dpopBuild{}, fmt.Errorf("server.dpop: nonce secret: %w", err)
	}
	return dpopBuild{options: gateway.DPoPOptions{Replay: guard, NonceSecret: secret}, memory: mem}, nil
}
