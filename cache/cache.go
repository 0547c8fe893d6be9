// Package cache stores exchanged tokens behind one interface, Store: a
// bounded in-memory tier with a TTL per entry (Memory), a shared Redis tier
// (keyed-hash key names, AEAD-encrypted values, a circuit breaker), their
// tiered composition (Tiered), and revocation (dropping entries by keyed
// hash, on every replica through Redis pub/sub). A caller says how far a
// lookup goes with a Lookup, never by asking which tier it holds.
//
// The denylist and the DPoP replay store are uses of the same tiers, not
// other caches: Denylist is the in-process index of the revocations that
// Store.Revoke spreads (filled locally, from peers and from Redis), and the
// replay store (ReplayGuard) marks proof identifiers once, in memory and,
// with Redis, in the shared tier; it needs an atomic set-if-absent that an
// entry store does not offer, so it keeps its own two-method interface.
//
// It stores entries opaquely and knows nothing of what a token means; keys
// and the hashes it indexes are already keyed hashes, never tokens or
// subjects.
package cache

import "time"

// Entry is one cached exchanged token.
type Entry struct {
	Token     string
	TokenType string // RFC 8693 issued_token_type
	Scope     string
	// IssuedAt and ExpiresAt bound the entry's life; a tier never returns an
	// entry at or past ExpiresAt.
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Capped is true when ExpiresAt was cut to the umbrella token's expiry, so
	// exchanging again cannot yield a longer-lived token.
	Capped bool
	// SubjectHash, SessionHash and TokenHash are keyed hashes (HMACs computed
	// by the exchanger, never the raw values) of the umbrella token's sub,
	// its sid and the token itself: revocation finds entries by them. Empty
	// when unknown (no sid claim, or an entry made without them).
	SubjectHash string
	SessionHash string
	TokenHash   string
	// ClientHash, IssuerHash and KeyHash are keyed hashes of the umbrella
	// token's client_id (or azp), its iss, and (iss, kid of the key that
	// verified it); SigningKeyHash of the kid of the local key that signed
	// the exchanged token. Revocation and key removal find entries by them.
	ClientHash     string
	IssuerHash     string
	KeyHash        string
	SigningKeyHash string
}
