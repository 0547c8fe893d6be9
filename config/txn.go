package config

import "time"

// TxnToken configures Transaction Tokens (draft-ietf-oauth-transaction-tokens-10,
// docs/txn-tokens.md): short-lived JWTs that carry the identity and context
// of one edge request to the services inside the trust domain, in the
// Txn-Token request header of routes whose forward is txn_token or both.
type TxnToken struct {
	// TrustDomain is the aud of every Txn-Token: the trust domain the
	// internal services belong to. Required when a route forwards one.
	TrustDomain string `yaml:"trust_domain"`
	// WorkloadID is the req_wl claim: tokengate's workload identifier.
	// Default "tokengate".
	WorkloadID string `yaml:"workload_id"`
	// TTL is a Txn-Token's lifetime (never past the umbrella token's exp).
	// Default 60s; at most 5m: Txn-Tokens are replayable, so they stay short.
	TTL Duration `yaml:"ttl"`
	// ContextClaims are umbrella token claims copied into tctx when present.
	// Default none.
	ContextClaims []string `yaml:"context_claims"`
}

// Values of Route.Forward.
const (
	// ForwardAccessToken sends the exchanged token in Authorization (default).
	ForwardAccessToken = "access_token"
	// ForwardTxnToken sends only a Txn-Token: no Authorization header, no exchange.
	ForwardTxnToken = "txn_token"
	// ForwardBoth sends the exchanged token and a Txn-Token.
	ForwardBoth = "both"
)

// Txn-Token defaults and limits.
const (
	DefaultTxnWorkloadID = "tokengate"
	DefaultTxnTTL        = 60 * time.Second
	// MaxTxnTTL bounds txn_token.ttl: a Txn-Token is a bearer credential
	// inside the trust domain, valid for one request's call chain.
	MaxTxnTTL = 5 * time.Minute
)

// ForwardsTxnToken reports whether the route sends a Txn-Token upstream.
func (r Route) ForwardsTxnToken() bool {
	return r.Forward == ForwardTxnToken || r.Forward == ForwardBoth
}

// ForwardsAccessToken reports whether the route exchanges the umbrella token
// and sends the result in Authorization ("" is the default, access_token).
func (r Route) ForwardsAccessToken() bool {
	return r.Forward != ForwardTxnToken
}
