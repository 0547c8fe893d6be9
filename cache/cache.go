// Package cache stores exchanged tokens: a bounded in-memory tier with a TTL per
// entry (and, later, a shared Redis tier). It stores entries opaquely and knows
// nothing of what a token means; keys are already keyed hashes, never tokens.
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
}
