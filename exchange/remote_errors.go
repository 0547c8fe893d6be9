package exchange

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
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

// stsMaxDescription bounds the STS's error_description kept in an STSError:
// it reaches logs, and a broken STS may send anything.
const stsMaxDescription = 256

// STSError is a failed call to the RFC 8693 STS, in the manner of x/oauth2's
// RetrieveError: the STS's answer travels with it. Status is 0 when no
// response arrived (connection refused, timeout); Err is then the cause.
type STSError struct {
	// Status is the HTTP status of the STS's response, 0 when there was none.
	Status int
	// Code is the RFC 6749 "error" of the response, "" when the body had none.
	Code string
	// Description is the response's error_description, printable ASCII and
	// bounded; or what was wrong with the response.
	Description string
	// Err is the transport error or the parse error, if any.
	Err error
}

func (e *STSError) Error() string {
	var b strings.Builder
	b.WriteString("sts ")
	if e.Status != 0 {
		fmt.Fprintf(&b, "answered %d", e.Status)
	} else {
		b.WriteString("unreachable")
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Description != "" {
		fmt.Fprintf(&b, ": %s", e.Description)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *STSError) Unwrap() error { return e.Err }

// Retryable reports a transient failure that the same request may get past:
// no response at all (connection errors, timeouts), 5xx, and 429. A 4xx is
// the STS's considered answer and is never retried.
func (e *STSError) Retryable() bool {
	switch {
	case e.Status == 0:
		return !errors.Is(e.Err, context.Canceled)
	case e.Status == http.StatusTooManyRequests, e.Status >= 500:
		return true
	}
	return false
}

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
func (e *STSError) outcome() stsOutcome {
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

// invalidResponse reports an unusable 200 answer: malformed, or a token that
// is not for what was asked.
func (e *STSError) invalidResponse() bool { return e.Status == http.StatusOK }

// stsMaxPublicDescription bounds the STS's error_description shown to a
// client.
const stsMaxPublicDescription = 160

// PublicDescription is the STS's error_description when it is safe to show
// to the client: printable ASCII (stsSanitize made it so), at most 160
// characters, and nothing that looks like a token (a run of 40 or more
// base64/base64url characters, or a JWT's "eyJ"). Otherwise "".
func (e *STSError) PublicDescription() string {
	d := strings.TrimSpace(e.Description)
	if d == "" || len(d) > stsMaxPublicDescription || strings.Contains(d, "eyJ") || strings.Contains(d, "[redacted]") {
		return ""
	}
	run := 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c == '-' || c == '_' || c == '+' || c == '/' || c == '=' || c == '.' ||
			(c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			run++
			if run >= 40 {
				return ""
			}
			continue
		}
		run = 0
	}
	return d
}

// stsClientError turns an STS failure into the error the caller branches
// on: a *RejectError (401), ErrExchangeDenied (403), ErrSTSConfig or
// ErrExchangeUnavailable (503), each wrapping e.
func stsClientError(e *STSError) error {
	switch e.outcome() {
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

// stsSanitize keeps printable ASCII of s, bounded: an STS's text reaches logs.
func stsSanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < stsMaxDescription; i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f {
			c = ' '
		}
		b.WriteByte(c)
	}
	return b.String()
}
