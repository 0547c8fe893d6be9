// Package sts is the remote RFC 8693 token exchange client: it asks the
// configured security token service for a single-audience token (and, with
// txn_token, for a Transaction Token), with client authentication and
// metadata discovery through internal/oauthclient, bounded retries, and a
// circuit breaker (sony/gobreaker) so a failing STS is not hammered.
//
// It owns what an STS answer means: which failures reject the subject
// token, which deny the audience, which are tokengate's own configuration
// problem, how long an issued token is kept. It implements
// exchange.Upstream and uses exchange's shared types and errors; it knows
// nothing of local signing keys, of umbrella token verification, or of
// caching (exchange.Caching decorates it).
package sts
