// Package sign is local signing: it mints RFC 9068 access tokens (one
// audience, exp never past the umbrella token's) and Transaction Tokens
// with the active key of an exchange/keys key set, whose public JWKS the
// admin listener publishes.
//
// It implements exchange.Upstream (and the gateway's Txn-Token minter) on
// exchange's shared types. It knows nothing of verifying umbrella tokens,
// of the remote STS, or of caching (exchange.Caching decorates it).
package sign
