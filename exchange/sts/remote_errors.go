package sts

import (
	"fmt"
	"net/http"

	"github.com/tokengate/tokengate/exchange"
)

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
func stsOutcomeOf(e *exchange.STSError) stsOutcome {
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
func stsInvalidResponse(e *exchange.STSError) bool { return e.Status == http.StatusOK }

// stsClientError turns an STS failure into the error the caller branches
// on: a *RejectError (401), ErrExchangeDenied (403), ErrSTSConfig or
// ErrExchangeUnavailable (503), each wrapping e.
func stsClientError(e *exchange.STSError) error {
	switch stsOutcomeOf(e) {
	case stsRejected:
		return &exchange.RejectError{
			Reason:      exchange.ReasonSTSRejected,
			Description: "the token exchange service rejected the access token",
			Err:         e,
		}
	case stsDenied:
		return fmt.Errorf("remote exchange: %w: %w", exchange.ErrExchangeDenied, e)
	case stsConfig:
		return fmt.Errorf("remote exchange: %w: %w", exchange.ErrSTSConfig, e)
	default:
		return fmt.Errorf("remote exchange: %w: %w", exchange.ErrExchangeUnavailable, e)
	}
}
