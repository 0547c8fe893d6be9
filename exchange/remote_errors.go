package exchange

import (
	"errors"
	"fmt"
	"net/http"

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

// stsOutcome is what an STS failure means for the client's request.
type stsOutcome int

const (
	stsUnavailable stsOutcome = iota // 503 + Retry-After
	stsRejected                      // 401 invalid_token: the subject token is refused
	stsDenied                        // 403: not for this audience / scope
	stsConfig                        // 503 + a long Retry-After: tokengate's request was refused
)

// stsConfigCodes are the RFC 6749 5.2 errors by which an STS refuses the
// request itself, not the subject token: tokengate's client, credentials,
// grant or parameters.
func stsConfigCodes() []string {
	return []string{"invalid_request", "invalid_client", "unauthorized_client", "unsupported_grant_type", "unsupported_token_type"}
}

// outcome classifies the error by the STS's answer. invalid_grant (and
// invalid_token, which some STSs use) refuse the subject token; invalid_target,
// invalid_scope and access_denied refuse this audience or these scopes;
// invalid_request, invalid_client, unauthorized_client,
// unsupported_grant_type and unsupported_token_type refuse tokengate's
// request (stsConfig). Everything
// else (5xx, no answer, a 4xx without an RFC 6749 error) is about the STS,
// not the caller's token: an outage for the caller, fail closed.
func stsOutcomeOf(e *STSError) stsOutcome {
	if e.Status < 400 || e.Status >= 500 {
		return stsUnavailable
	}
	switch e.Code {
	case "invalid_grant", "invalid_token":
		return stsRejected
	case "invalid_target", "invalid_scope", "access_denied":
		return stsDenied
	}
	for _, c := range stsConfigCodes() {
		if e.Code == c {
			return stsConfig
		}
	}
	return stsUnavailable
}

// stsInvalidResponse reports an unusable 200 answer: malformed, or a token
// that is not for what was asked.
func stsInvalidResponse(e *STSError) bool { return e.Status == http.StatusOK }

// stsClientError turns an STS failure into the error the caller branches
// on: a *RejectError (401), ErrExchangeDenied (403), ErrSTSConfig or
// ErrExchangeUnavailable (503), each wrapping e.
func stsClientError(e *STSError) error {
	switch stsOutcomeOf(e) {
	case stsRejected:
		return &RejectError{
			Reason:      ReasonSTSRejected,
			Description: "the token exchange service rejected the access token",
			Err:         e,
		}
	case stsDenied:
		return fmt.Errorf("remote exchange: %w: %w", ErrExchangeDenied, e)
	case stsConfig:
		return fmt.Errorf("remote exchange: %w: %w", ErrSTSConfig, e)
	default:
		return fmt.Errorf("remote exchange: %w: %w", ErrExchangeUnavailable, e)
	}
}
