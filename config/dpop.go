package config

import (
	"slices"
	"strings"
	"time"
)

// DPoP configures RFC 9449 sender-constrained umbrella tokens (server.dpop,
// docs/dpop.md). DPoP is always on: a token bound with cnf.jkt is only ever
// accepted with a valid proof; these keys only tune the checks.
type DPoP struct {
	// Algorithms is the allowlist of proof algorithms. Default: every
	// asymmetric JWS algorithm (ES*, PS*, RS*, EdDSA); none and HS* are refused.
	Algorithms []string `yaml:"algorithms"`
	// MaxAge is how old a proof's iat may be. Default 60s.
	MaxAge Duration `yaml:"max_age"`
	// Leeway is how far in the future a proof's iat may be. Default 5s.
	Leeway Duration `yaml:"leeway"`
	// Nonce requires server-provided nonces (DPoP-Nonce). Default false.
	Nonce bool `yaml:"nonce"`
	// NonceLifetime is the nonce window: a nonce is accepted for one to two
	// windows. Default 5m.
	NonceLifetime Duration `yaml:"nonce_lifetime"`
	// ReplayMaxEntries bounds the in-memory replay cache. Default 100000.
	ReplayMaxEntries int `yaml:"replay_max_entries"`
}

// DPoP defaults (server.dpop).
const (
	DefaultDPoPMaxAge           = 60 * time.Second
	DefaultDPoPLeeway           = 5 * time.Second
	DefaultDPoPNonceLifetime    = 5 * time.Minute
	DefaultDPoPReplayMaxEntries = 100000
)

// DefaultDPoPAlgorithms is server.dpop.algorithms when absent: every
// asymmetric algorithm (AsymmetricAlgorithms), in the documented order
// ES*, PS*, RS*, EdDSA. A new slice each call.
func DefaultDPoPAlgorithms() []string {
	family := func(a string) int { return strings.Index("ESPSRSEd", a[:2]) }
	algs := AsymmetricAlgorithms()
	slices.SortStableFunc(algs, func(a, b string) int { return family(a) - family(b) })
	return algs
}

// applyDPoPDefaults fills server.dpop.
func (c *Config) applyDPoPDefaults() {
	d := &c.Server.DPoP
	setDefaultList(c, &d.Algorithms, "server.dpop.algorithms", DefaultDPoPAlgorithms)
	setDefault(c, &d.MaxAge, "server.dpop.max_age", Duration(DefaultDPoPMaxAge))
	setDefault(c, &d.Leeway, "server.dpop.leeway", Duration(DefaultDPoPLeeway))
	setDefault(c, &d.NonceLifetime, "server.dpop.nonce_lifetime", Duration(DefaultDPoPNonceLifetime))
	setDefault(c, &d.ReplayMaxEntries, "server.dpop.replay_max_entries", DefaultDPoPReplayMaxEntries)
}
