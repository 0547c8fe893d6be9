package sts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

const (
	// stsMaxBody bounds an STS response body: a token response is a few KiB.
	stsMaxBody = 1 << 20
	// stsServer names the STS in an STSError's text.
	stsServer = "sts"
)

// stsTokenResponse is an RFC 8693 section 2.2.1 response. expires_in stays
// raw: RFC 6749 says number, but some servers send a numeric string.
type stsTokenResponse struct {
	AccessToken     string          `json:"access_token"`
	IssuedTokenType string          `json:"issued_token_type"`
	TokenType       string          `json:"token_type"`
	ExpiresIn       json.RawMessage `json:"expires_in"`
	Scope           string          `json:"scope"`
}

// stsParseSuccess reads a 200 response. now is when the request was sent:
// expires_in counts from about then, so the token is never kept too long.
// ttl caps the lifetime; notAfter (the umbrella's exp) too.
func stsParseSuccess(resp *oauthclient.Response, now time.Time, ttl time.Duration, notAfter time.Time) (*exchange.Result, error) {
	malformed := stsMalformed(resp)
	tr, err := stsDecodeSuccess(resp)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.EqualFold(tr.TokenType, "Bearer"), tr.TokenType == "N_A":
		// N_A (RFC 8693 2.2.1): not an OAuth access token, but usable as a
		// bearer credential at the API, which is what was asked for.
	case tr.TokenType == "":
		return nil, malformed("no token_type")
	default:
		// DPoP, MAC, ...: tokengate can only present a bearer token.
		return nil, malformed("token_type %q is not Bearer", oauthclient.Sanitize(tr.TokenType))
	}
	switch tr.IssuedTokenType {
	case exchange.TokenTypeAccessToken, exchange.TokenTypeJWT:
	case "":
		// REQUIRED by RFC 8693, but some STSs omit it; token_type said Bearer.
		tr.IssuedTokenType = exchange.TokenTypeAccessToken
	default:
		// A refresh token or an ID token must never be sent to an API.
		return nil, malformed("issued_token_type %q is not an access token or a JWT", oauthclient.Sanitize(tr.IssuedTokenType))
	}
	exp, err := stsExpiry(tr, now, ttl, notAfter, malformed)
	if err != nil {
		return nil, err
	}
	return &exchange.Result{
		AccessToken:     tr.AccessToken,
		IssuedTokenType: tr.IssuedTokenType,
		TokenType:       "Bearer",
		Scope:           tr.Scope,
		ExpiresAt:       exp,
	}, nil
}

// stsMalformed returns the constructor of "malformed token response" errors.
func stsMalformed(resp *oauthclient.Response) func(format string, args ...any) error {
	return func(format string, args ...any) error {
		return &exchange.STSError{Server: stsServer, Status: resp.Status, Description: "malformed token response: " + fmt.Sprintf(format, args...)}
	}
}

// stsDecodeSuccess reads the JSON of a 200 response and checks its
// access_token is present and header-safe.
func stsDecodeSuccess(resp *oauthclient.Response) (*stsTokenResponse, error) {
	malformed := stsMalformed(resp)
	if !oauthclient.JSONContentType(resp.Header) {
		return nil, malformed("Content-Type %q is not JSON", oauthclient.Sanitize(resp.Header.Get("Content-Type")))
	}
	var tr stsTokenResponse
	dec := json.NewDecoder(bytes.NewReader(resp.Body))
	if err := dec.Decode(&tr); err != nil {
		return nil, &exchange.STSError{Server: stsServer, Status: resp.Status, Description: "malformed token response: not a JSON object with the RFC 8693 fields", Err: stsJSONError(err)}
	}
	if dec.More() {
		return nil, malformed("data after the JSON object")
	}

	if tr.AccessToken == "" {
		return nil, malformed("no access_token")
	}
	if !stsValidToken(tr.AccessToken) {
		return nil, malformed("access_token is not a token that fits an Authorization header")
	}
	return &tr, nil
}

// stsExpiry is when an issued token stops being used: now + ttl, capped by
// notAfter (the umbrella's exp), expires_in, else the token's own exp.
func stsExpiry(tr *stsTokenResponse, now time.Time, ttl time.Duration, notAfter time.Time,
	malformed func(format string, args ...any) error) (time.Time, error) {
	exp := now.Add(ttl)
	if notAfter.Before(exp) {
		exp = notAfter
	}
	if len(tr.ExpiresIn) > 0 && string(tr.ExpiresIn) != "null" {
		secs, err := stsExpiresIn(tr.ExpiresIn)
		if err != nil {
			return time.Time{}, malformed("expires_in: %v", err)
		}
		if e := now.Add(time.Duration(secs) * time.Second); e.Before(exp) {
			exp = e
		}
	} else if jwtExp, ok := exchange.UnverifiedExpiry(tr.AccessToken); ok && jwtExp.Before(exp) {
		exp = jwtExp
	}
	if !exp.After(now) {
		return time.Time{}, malformed("the issued token is already expired")
	}
	return exp, nil
}

// stsJSONError keeps a decode error's kind, not the text around it: a
// syntax error's message can quote the body.
func stsJSONError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("field %q is a JSON %s", typ.Field, typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("empty or truncated JSON")
	}
	return errors.New("invalid JSON")
}

// stsExpiresIn reads expires_in: a positive number of seconds, as a JSON
// number or a numeric string (fractions are cut).
func stsExpiresIn(raw json.RawMessage) (int64, error) {
	s := string(raw)
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, errors.New("not a number")
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("not a number")
	}
	if f < 1 {
		return 0, fmt.Errorf("%v is not a positive number of seconds", f)
	}
	// Beyond ten years means nothing here: token_ttl caps it anyway.
	return int64(min(f, 10*365*24*3600)), nil
}

// stsValidToken: visible ASCII only (RFC 6750 b64token is narrower), so the
// token cannot split or forge a header when forwarded.
func stsValidToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
