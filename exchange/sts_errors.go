package exchange

import (
	"errors"
	"fmt"

	"github.com/tokengate/tokengate/internal/oauthclient"
)

// ErrExchangeDenied: the STS refused to issue a token for this audience or
// these scopes to this (valid) subject token; 403, never a forward.
var ErrExchangeDenied = errors.New("token exchange denied")

// ErrSTSConfig: the STS refused tokengate's own request (invalid_request,
// invalid_client, unauthorized_client, unsupported_grant_type,
// unsupported_token_type): the
// configuration at tokengate or at the STS needs fixing. Neither the
// caller's fault nor transient, so the gateway answers 503 with a long
// Retry-After. It wraps ErrExchangeUnavailable.
var ErrSTSConfig = fmt.Errorf("the token exchange service refused tokengate's request (a configuration problem): %w", ErrExchangeUnavailable)

// Rejection reasons of STS answers (tokengate_token_rejections_total).
const (
	// ReasonSTSRejected: the STS refused the subject token itself (401).
	ReasonSTSRejected = "sts_rejected"
	// ReasonSTSDenied: the STS will not issue a token for the audience or
	// scopes (403).
	ReasonSTSDenied = "sts_denied"
)

// STSError is a failed call to the RFC 8693 STS, in the manner of x/oauth2's
// RetrieveError: the STS's answer travels with it (Status, Code,
// Description; Status 0 and Err the cause when no response arrived).
// Retryable reports a transient failure, PublicDescription what may be
// shown to a client. It is internal/oauthclient's error type: every OAuth
// call (STS, introspection) fails with it.
type STSError = oauthclient.Error
