package config

import (
	"slices"
	"time"
)

// Rules and limits that other packages enforce but the file does not set.
// They live here beside the defaults so that each has one home: a package
// that needs one of them (as a zero-value fallback of its constructor, or
// as an allowlist) refers to the constant here, never to a second literal.

// asymmetricAlgorithms is every asymmetric JWS algorithm: the only ones an
// issuer's or DPoP proof's allowlist may name (none and HS* never are).
// An array, so reading it allocates nothing on the verification path.
func asymmetricAlgorithms() [10]string {
	return [10]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
}

// AsymmetricAlgorithms is every asymmetric JWS algorithm, the default and
// the limit of issuers[].algorithms and server.dpop.algorithms. A new
// slice each call, so no caller can change the rule.
func AsymmetricAlgorithms() []string {
	a := asymmetricAlgorithms()
	return slices.Clone(a[:])
}

// IsAsymmetricAlgorithm reports whether alg is one of AsymmetricAlgorithms
// (names are case-sensitive). It allocates nothing.
func IsAsymmetricAlgorithm(alg string) bool {
	a := asymmetricAlgorithms()
	return slices.Contains(a[:], alg)
}

// SigningAlgorithms are the algorithms of exchange.local.signing_keys[].alg
// (and of a private_key_jwt client key): one per key type tokengate
// generates and signs with. A new slice each call.
func SigningAlgorithms() []string { return []string{"ES256", "RS256", "PS256", "EdDSA"} }

// IsSigningAlgorithm reports whether alg is one of SigningAlgorithms.
func IsSigningAlgorithm(alg string) bool {
	switch alg {
	case "ES256", "RS256", "PS256", "EdDSA":
		return true
	}
	return false
}

// Limits without a configuration key.
const (
	// DefaultMemoSize bounds the verifier's memo of verified tokens.
	DefaultMemoSize = 10000
	// DefaultExchangeTimeout bounds one upstream exchange (signing or an
	// STS call with its retries) run by the caching exchanger's flight.
	DefaultExchangeTimeout = 10 * time.Second
	// DefaultRemoteMaxAttempts is how many times one STS exchange is tried.
	DefaultRemoteMaxAttempts = 3
	// DefaultRemoteBackoff is the pause before the first retry (doubling).
	DefaultRemoteBackoff = 50 * time.Millisecond
	// DefaultBreakerThreshold consecutive transient STS failures open the
	// STS circuit breaker.
	DefaultBreakerThreshold = 5
	// DefaultBreakerCooldown is the breaker's first open period.
	DefaultBreakerCooldown = time.Second
	// DefaultBreakerMaxCooldown caps the open period, which doubles after
	// each failed half-open probe.
	DefaultBreakerMaxCooldown = 30 * time.Second
	// DefaultReadyTimeout bounds the admin /readyz checks.
	DefaultReadyTimeout = 3 * time.Second
	// DefaultTLSPollInterval is how often the TLS files (server.tls,
	// routes[].tls) are read for changes.
	DefaultTLSPollInterval = 2 * time.Second
	// DefaultTracingBatchTimeout is how long finished spans wait to be
	// exported together; DefaultTracingExportTimeout bounds one export.
	DefaultTracingBatchTimeout  = 5 * time.Second
	DefaultTracingExportTimeout = 5 * time.Second
)

// DefaultRedisTimeout bounds one Redis call on the request path when the
// tier is built without one: a dial and a read at their defaults.
const DefaultRedisTimeout = DefaultRedisDialTimeout + DefaultRedisReadTimeout
