package sign

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/exchange"
)

// newTxnID returns 128 random bits in the UUIDv4 form (RFC 9562 section
// 5.4): unique across every instance without coordination.
func newTxnID(random io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("txn id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:]), nil
}

// txnRandom is crypto/rand unless a test injects a reader.
func txnRandom(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// tokenSubject is the sub of a token minted from the umbrella claims c: its
// sub, else (no resource owner, RFC 9068 section 2.2) its client_id.
func tokenSubject(c *exchange.Claims) (string, error) {
	switch {
	case c.Subject != "":
		return c.Subject, nil
	case c.ClientID != "":
		return c.ClientID, nil
	}
	return "", exchange.Reject(exchange.ReasonMalformed, "token has neither sub nor client_id", nil)
}

// tokenLifetime is the iat and exp (Unix seconds) of a token minted at now
// from the umbrella claims c: ttl long, never outliving the umbrella token.
// what names the token in the error when no useful lifetime is left.
func tokenLifetime(now time.Time, ttl time.Duration, c *exchange.Claims, what string) (iat, exp int64, err error) {
	if c.Expiry.IsZero() {
		return 0, 0, exchange.Reject(exchange.ReasonMalformed, "token has no exp", nil)
	}
	end := now.Add(ttl)
	if c.Expiry.Before(end) {
		end = c.Expiry
	}
	iat, exp = now.Unix(), end.Unix()
	if exp <= iat {
		return 0, 0, exchange.Reject(exchange.ReasonExpired, "token expires before "+what+" could be used", nil)
	}
	return iat, exp, nil
}

// signJWT signs claims (a map or a struct with JSON tags) as a compact JWS
// with s. The claims are serialized once, by encoding/json: go-jose's
// jwt.Signed(...).Claims(...) builder marshals them, decodes them back into
// a map and marshals that again, which was most of what minting cost
// besides the signature itself.
func signJWT(s jose.Signer, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}
