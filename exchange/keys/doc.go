// Package keys holds the private keys tokengate signs with: PEM parsing and
// generation (tokengate keys generate), the algorithm-to-key checks, the
// local signing key set with its public JWKS, and the client-assertion key
// and client authentication (RFC 7523 private_key_jwt, client secrets) of
// the OAuth calls tokengate makes (STS, introspection).
//
// It is a leaf: exchange/sign mints with its key set, exchange/sts and the
// introspection client authenticate with it, so none of them has to import
// another. It knows nothing of what a token means, of verification, of
// exchange or of caching, and never prints key material.
package keys
