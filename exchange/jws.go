package exchange

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/strictjson"
)

// The strict compact JWS syntax shared by the verifier (exchange/verify)
// and revocation identities (unverified.go): one parser, so a token is
// named for revocation exactly as the verifier reads it. Nothing here
// checks a signature.

// jwsEncoding is the only encoding a JWS segment may use: base64url without
// padding, strict about trailing bits so that one signature has one spelling.
var jwsEncoding = base64.RawURLEncoding.Strict()

// JWSHeader is what the verifier reads from a protected header.
type JWSHeader struct {
	Alg    string
	Kid    string
	HasKid bool
}

// JWS is a compact JWS decoded but not yet verified.
type JWS struct {
	Header  JWSHeader
	Payload map[string]json.RawMessage
}

// splitJWS checks the compact serialization and decodes the header and
// payload. The signature segment is checked for its encoding only; the
// verifier decodes it when it checks the signature (exchange/verify).
func splitJWS(raw string) (header, payload []byte, err error) {
	switch strings.Count(raw, ".") {
	case 2:
	case 4:
		return nil, nil, Reject(ReasonMalformed, "encrypted tokens (JWE) are not accepted", nil)
	default:
		return nil, nil, Reject(ReasonMalformed, "token is not a compact JWS", nil)
	}
	h, rest, _ := strings.Cut(raw, ".")
	p, s, _ := strings.Cut(rest, ".")
	if header, err = DecodeSegment(h); err != nil {
		return nil, nil, Reject(ReasonMalformed, "token header is not base64url", nil)
	}
	if payload, err = DecodeSegment(p); err != nil {
		return nil, nil, Reject(ReasonMalformed, "token payload is not base64url", nil)
	}
	if _, err = DecodeSegment(s); err != nil {
		return nil, nil, Reject(ReasonMalformed, "token signature is not base64url", nil)
	}
	return header, payload, nil
}

var errSegment = errors.New("segment is not unpadded base64url")

// DecodeSegment decodes one non-empty segment. The alphabet is checked first
// because the standard decoder silently skips CR and LF.
func DecodeSegment(seg string) ([]byte, error) {
	if seg == "" {
		return nil, errSegment
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, errSegment
		}
	}
	b, err := jwsEncoding.DecodeString(seg)
	if err != nil {
		return nil, errSegment
	}
	return b, nil
}

// ParseJWS decodes the header and payload of raw and applies the header
// rules that need no configuration: no crit (or b64), alg a string naming an
// asymmetric algorithm, kid a string when present.
func ParseJWS(raw string) (*JWS, error) {
	hb, pb, err := splitJWS(raw)
	if err != nil {
		return nil, err
	}
	hm, err := strictjson.Object(hb)
	if err != nil {
		return nil, Reject(ReasonMalformed, "token header is not a JSON object with unique names", nil)
	}
	if _, ok := hm["crit"]; ok {
		return nil, Reject(ReasonCrit, "critical header parameters are not accepted", nil)
	}
	// RFC 7797 unencoded payloads change what is signed; the parameter is only
	// valid together with crit, so its presence alone is refused the same way.
	if _, ok := hm["b64"]; ok {
		return nil, Reject(ReasonCrit, "critical header parameters (b64) are not accepted", nil)
	}
	var h JWSHeader
	alg, ok, err := JSONString(hm, "alg")
	if err != nil || !ok || !config.IsAsymmetricAlgorithm(alg) {
		return nil, Reject(ReasonAlgorithm, "algorithm not allowed", nil)
	}
	h.Alg = alg
	if h.Kid, h.HasKid, err = JSONString(hm, "kid"); err != nil {
		return nil, Reject(ReasonMalformed, "header kid is not a string", nil)
	}
	pm, err := strictjson.Object(pb)
	if err != nil {
		return nil, Reject(ReasonMalformed, "token payload is not a JSON object with unique names", nil)
	}
	return &JWS{Header: h, Payload: pm}, nil
}

// ErrClaimType: a JSON member has the wrong type for its name.
var ErrClaimType = errors.New("claim has the wrong JSON type")

// JSONString reads an optional string member. A present member of another
// type (null included) is an error.
func JSONString(m map[string]json.RawMessage, name string) (string, bool, error) {
	raw, ok := m[name]
	if !ok {
		return "", false, nil
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", true, ErrClaimType
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, ErrClaimType
	}
	return s, true, nil
}

// JWTShaped reports a token that looks like a JWT: a compact JWS (three
// segments) or JWE (five) whose first segment is base64url of a JSON
// object. Such a token is never sent to the introspection endpoint.
func JWTShaped(raw string) bool {
	if n := strings.Count(raw, "."); n != 2 && n != 4 {
		return false
	}
	h, _, _ := strings.Cut(raw, ".")
	hb, err := DecodeSegment(h)
	if err != nil {
		return false
	}
	for _, c := range hb {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}
