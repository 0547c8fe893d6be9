package config

import (
	"slices"
	"strings"
	"time"
)

// DPoP limits.
const (
	maxDPoPMaxAge        = 10 * time.Minute
	maxDPoPLeeway        = time.Minute
	minDPoPNonceLifetime = 10 * time.Second
	maxDPoPNonceLifetime = time.Hour
	maxDPoPReplayEntries = 10_000_000
)

// dpop checks server.dpop.
func (v *validator) dpop() {
	const p = "server.dpop."
	d := v.c.Server.DPoP
	if len(d.Algorithms) == 0 {
		v.add(p+"algorithms", "is empty: list proof algorithms like [ES256, EdDSA], or remove the key for every asymmetric one")
	}
	seen := map[string]int{}
	for i, a := range d.Algorithms {
		path := indexPath(p+"algorithms", i)
		switch first, dup := seen[a]; {
		case !slices.Contains(DefaultDPoPAlgorithms(), a):
			v.addf(path, "%s is not an asymmetric JWS algorithm: use one of %s (none and HS* are never accepted)",
				quote(a), strings.Join(DefaultDPoPAlgorithms(), ", "))
		case dup:
			v.addf(path, "%s is also algorithms[%d]: list each algorithm once", quote(a), first)
		default:
			seen[a] = i
		}
	}
	if m := d.MaxAge.D(); m <= 0 || m > maxDPoPMaxAge {
		v.addf(p+"max_age", "%s is out of range: use more than 0s and at most %s (default %s)", d.MaxAge, maxDPoPMaxAge, DefaultDPoPMaxAge)
	}
	if l := d.Leeway.D(); l < 0 || l > maxDPoPLeeway {
		v.addf(p+"leeway", "%s is out of range: use 0s to %s (default %s)", d.Leeway, maxDPoPLeeway, DefaultDPoPLeeway)
	}
	if n := d.NonceLifetime.D(); n < minDPoPNonceLifetime || n > maxDPoPNonceLifetime {
		v.addf(p+"nonce_lifetime", "%s is out of range: use %s to %s (default %s)", d.NonceLifetime,
			minDPoPNonceLifetime, maxDPoPNonceLifetime, DefaultDPoPNonceLifetime)
	}
	if n := d.ReplayMaxEntries; n < 1 || n > maxDPoPReplayEntries {
		v.addf(p+"replay_max_entries", "%d is out of range: use 1 to %d (default %d)", n, maxDPoPReplayEntries, DefaultDPoPReplayMaxEntries)
	}
}
