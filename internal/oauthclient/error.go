package oauthclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// maxDescription bounds the error_description kept in an Error: it reaches
// logs, and a broken server may send anything.
const maxDescription = 256

// maxPublicDescription bounds the error_description shown to a client.
const maxPublicDescription = 160

// Error is a failed call to an authorization server, in the manner of
// x/oauth2's RetrieveError: the server's answer travels with it. Status is 0
// when no response arrived (connection refused, timeout); Err is then the
// cause.
type Error struct {
	// Server names the server in the message ("sts"); "" reads
	// "authorization server".
	Server string
	// Status is the HTTP status of the response, 0 when there was none.
	Status int
	// Code is the RFC 6749 "error" of the response, "" when the body had none.
	Code string
	// Description is the response's error_description, printable ASCII and
	// bounded (Sanitize); or what was wrong with the response.
	Description string
	// Err is the transport error or the parse error, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Server != "" {
		b.WriteString(e.Server)
	} else {
		b.WriteString("authorization server")
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, " answered %d", e.Status)
	} else {
		b.WriteString(" unreachable")
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
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports a transient failure that the same request may get past:
// no response at all (connection errors, timeouts; not the caller's own
// cancellation), 5xx, and 429. A 4xx is the server's considered answer and
// is never retried.
func (e *Error) Retryable() bool {
	switch {
	case e.Status == 0:
		return !errors.Is(e.Err, context.Canceled)
	case e.Status == http.StatusTooManyRequests, e.Status >= 500:
		return true
	}
	return false
}

// PublicDescription is the server's error_description when it is safe to
// show to a client: printable ASCII (Sanitize made it so), at most 160
// characters, and nothing that looks like a token (a run of 40 or more
// base64/base64url characters, a JWT's "eyJ", or a redaction mark).
// Otherwise "".
func (e *Error) PublicDescription() string {
	d := strings.TrimSpace(e.Description)
	if d == "" || len(d) > maxPublicDescription || strings.Contains(d, "eyJ") || strings.Contains(d, "[redacted]") {
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

// Sanitize keeps printable ASCII of s (anything else becomes a space),
// bounded to 256 bytes: a server's text reaches logs.
func Sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxDescription; i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f {
			c = ' '
		}
		b.WriteByte(c)
	}
	return b.String()
}
