// Package verify checks umbrella tokens: a JWT against its issuer's JWKS
// (strict compact JWS parsing, the issuer's algorithm allowlist, typed
// claims, a key set refreshed in one shared flight no more often than
// min_refresh_interval), an opaque token through the issuer's RFC 7662 /
// RFC 9701 introspection endpoint (one call per token at a time, cached
// until exp), and a memo of verified tokens so a repeated token costs no
// signature check. It returns an *exchange.Token whose RevocationID is the
// identity revocation keys it under (exchange.RevocationIDOf names a token
// value the same way, with the same parser).
//
// It knows nothing of signing, of the STS, of caching exchanged tokens or
// of HTTP routing; the gateway sees it through its Verifier interface.
package verify
