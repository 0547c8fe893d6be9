package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/keys"
	"github.com/tokengate/tokengate/exchange/sign"
	"github.com/tokengate/tokengate/exchange/sts"
	"github.com/tokengate/tokengate/gateway"
)

// modeUpstream is what exchange.mode contributes to a generation: the
// exchanger the cache sits on, the keys to publish, and what to fetch at
// start and check for readiness.
type modeUpstream struct {
	upstream exchange.Upstream
	// keys are the local signing keys; nil in remote mode, where the admin
	// listener publishes no JWKS and no discovery document (backends verify
	// with the STS's keys), so both answer 404.
	keys *keys.KeySet
	// issuer is the iss that discovery is served under ("" in remote mode).
	issuer string
	// prefetch runs at start; a failure is logged, not fatal.
	prefetch func(context.Context) error
	// checks are added to /readyz.
	checks []gateway.ReadinessCheck
}

// buildUpstream builds the Local signer or the Remote STS client.
func buildUpstream(p *Process, cfg *config.Config) (*modeUpstream, error) {
	switch cfg.Exchange.Mode {
	case config.ModeLocal:
		local, err := newLocalSigner(cfg, p.Clock, p.ExchangeMetrics, p.Logger)
		if err != nil {
			return nil, err
		}
		return &modeUpstream{upstream: local, keys: local.Keys(), issuer: cfg.Exchange.Local.Issuer,
			prefetch: func(context.Context) error { return nil }}, nil
	case config.ModeRemote:
		remote, err := sts.NewRemote(sts.RemoteOptions{
			Config:     cfg.Exchange.Remote,
			TokenTTL:   cfg.Exchange.TokenTTL.D(),
			HTTPClient: p.HTTPClient,
			Clock:      p.Clock,
			Metrics:    p.ExchangeMetrics,
			Logger:     p.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("exchange.remote: %w", err)
		}
		up := &modeUpstream{upstream: remote, prefetch: remote.Prefetch}
		if cfg.Exchange.Remote.Issuer != "" {
			up.checks = []gateway.ReadinessCheck{{Name: "sts_metadata", Check: remote.Ready}}
		}
		// An open breaker or a refused request is named under "degraded":
		// the STS's state is not this replica's, /readyz stays 200.
		up.checks = append(up.checks, gateway.ReadinessCheck{Name: "sts", Check: remote.Degraded, Optional: true})
		return up, nil
	default:
		return nil, fmt.Errorf("exchange.mode %q is not an exchange mode", cfg.Exchange.Mode)
	}
}

// newLocalSigner loads exchange.local's keys and builds the signer (which
// `check --explain` also uses, to show what it would mint).
func newLocalSigner(cfg *config.Config, clock func() time.Time, metrics *exchange.Metrics, logger *slog.Logger) (*sign.Local, error) {
	keys, err := keys.NewKeySet(cfg.Exchange.Local.SigningKeys)
	if err != nil {
		return nil, fmt.Errorf("exchange.local.signing_keys: %w", err)
	}
	local, err := sign.NewLocal(sign.LocalOptions{
		Issuer:     cfg.Exchange.Local.Issuer,
		TokenTTL:   cfg.Exchange.TokenTTL.D(),
		CopyClaims: cfg.Exchange.Local.CopyClaims,
		Keys:       keys,
		Clock:      clock,
		Metrics:    metrics,
		Logger:     logger,
	})
	if err != nil {
		return nil, fmt.Errorf("exchange.local: %w", err)
	}
	return local, nil
}
