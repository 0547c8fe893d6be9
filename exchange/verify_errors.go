package exchange

import "errors"

// ErrIntrospectionUnavailable: the introspection endpoint could not say
// whether an opaque token is active (network error, timeout, non-200,
// unreadable or unverifiable response); an outage, not a bad token (503).
var ErrIntrospectionUnavailable = errors.New("token introspection unavailable")

// ReasonInactive: the authorization server says the opaque token is not
// active (RFC 7662 "active": false), or it is not an access token.
const ReasonInactive = "inactive"
