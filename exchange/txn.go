package exchange

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Transaction Tokens (draft-ietf-oauth-transaction-tokens-10).
const (
	// TokenTypeTxnToken is the requested_token_type and issued_token_type of a
	// Txn-Token (draft: "Txn-Token Request", "Txn-Token Response").
	TokenTypeTxnToken = "urn:ietf:params:oauth:token-type:txn_token"
	// TxnTokenJWSType is the typ header of a Txn-Token (draft: "JWT Header").
	TxnTokenJWSType = "txntoken+jwt"
)

// ErrTxnUnavailable: no Txn-Token could be made (signing failed, the STS's
// answer was unusable). 503, like ErrExchangeUnavailable, which it wraps.
var ErrTxnUnavailable = fmt.Errorf("transaction token unavailable: %w", ErrExchangeUnavailable)

// TxnOptions are what every Txn-Token carries, local or remote
// (config.TxnToken, validated).
type TxnOptions struct {
	// TrustDomain is the aud of every Txn-Token.
	TrustDomain string
	// WorkloadID is the req_wl claim.
	WorkloadID string
	// TTL is a Txn-Token's lifetime; the umbrella token's exp caps it.
	TTL time.Duration
	// ContextClaims are umbrella claims copied into tctx when present.
	ContextClaims []string
}

// Check returns every missing setting, joined: the local and remote
// Txn-Token minters refuse to start without them.
func (o TxnOptions) Check() error {
	var problems []error
	if o.TrustDomain == "" {
		problems = append(problems, errors.New("trust domain is empty: set txn_token.trust_domain"))
	}
	if o.WorkloadID == "" {
		problems = append(problems, errors.New("workload id is empty: set txn_token.workload_id"))
	}
	if o.TTL <= 0 {
		problems = append(problems, fmt.Errorf("ttl is %v: set txn_token.ttl to a short positive duration such as 60s", o.TTL))
	}
	return errors.Join(problems...)
}

// TxnRequest asks for the Txn-Token of one edge request.
type TxnRequest struct {
	// Subject is the verified umbrella token.
	Subject *Token
	// Scopes are the route's scopes as the umbrella token writes them,
	// sorted: every one must be among the umbrella token's scopes.
	Scopes []string
	// Context describes the edge request (the rctx claim).
	Context TxnContext
}

// TxnContext is the rctx claim: the environment of the edge request. The
// gateway fills it from the connection, never from client headers.
type TxnContext struct {
	// IP is the client's address from the connection (req_ip).
	IP string `json:"req_ip,omitempty"`
	// Transport is http or https: how the edge request arrived.
	Transport string `json:"transport,omitempty"`
	// Method is the request's HTTP method (tokengate extension req_method).
	Method string `json:"req_method,omitempty"`
	// Route is the name of the route that matched (extension req_route).
	Route string `json:"req_route,omitempty"`
}

// TxnResult is a Txn-Token and what the gateway logs about it.
type TxnResult struct {
	// Token is the compact JWS, sent in the Txn-Token header.
	Token string
	// Txn is its txn claim: the request id of the edge request.
	Txn string
	// ExpiresAt is its exp.
	ExpiresAt time.Time
}

// TxnScope checks that the requested scopes are the umbrella token's
// (draft "Scope Processing": never wider) and joins them.
func TxnScope(req TxnRequest) (string, error) {
	var n int
	for _, s := range req.Scopes {
		if !slices.Contains(req.Subject.Claims.Scopes, s) {
			// A gateway bug, never the client's doing: refuse, fail closed.
			return "", fmt.Errorf("%w: scope %q is not granted by the umbrella token", ErrTxnUnavailable, s)
		}
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	for i, s := range req.Scopes {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, s...)
	}
	return string(b), nil
}

// TxnContextClaims returns the configured claims the umbrella token carries,
// for tctx (local) or request_details (remote); nil when none.
func TxnContextClaims(c *Claims, names []string) (map[string]json.RawMessage, error) {
	var out map[string]json.RawMessage
	for _, name := range names {
		raw, ok := c.Extra[name]
		if !ok {
			continue
		}
		if !json.Valid(raw) {
			return nil, Reject(ReasonMalformed, fmt.Sprintf("claim %q is not valid JSON", name), nil)
		}
		if out == nil {
			out = make(map[string]json.RawMessage, len(names))
		}
		out[name] = raw
	}
	return out, nil
}
