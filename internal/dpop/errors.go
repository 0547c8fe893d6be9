package dpop

import "errors"

// Sentinel errors callers branch on; every error Verify returns wraps
// exactly one of them (through *Error).
var (
	// ErrInvalidProof: the proof is missing, malformed, badly signed, or
	// does not match the request or the token (RFC 9449 invalid_dpop_proof).
	ErrInvalidProof = errors.New("invalid DPoP proof")
	// ErrUseNonce: the server requires a nonce and the proof carries none,
	// or a stale or foreign one (RFC 9449 use_dpop_nonce).
	ErrUseNonce = errors.New("DPoP nonce required")
	// ErrReplay: the proof's jti was already used (checked by the caller
	// with a replay store; defined here so every DPoP failure has one home).
	ErrReplay = errors.New("DPoP proof replayed")
)

// Error is a refused proof: Kind is one of the sentinels, Description a
// short text safe to send to the client (it never holds the proof or the
// access token).
type Error struct {
	Kind        error
	Description string
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Description }

// Unwrap returns Kind, so errors.Is(err, ErrInvalidProof) works.
func (e *Error) Unwrap() error { return e.Kind }

func invalid(desc string) error { return &Error{Kind: ErrInvalidProof, Description: desc} }
