package verify

import (
	"encoding/json"

	"github.com/tokengate/tokengate/exchange"
)

// The verifier reads tokens with exchange's strict JWS parser (shared with
// revocation identities); these local names keep its code short.
type (
	verifyHeader = exchange.JWSHeader
	verifyParsed = exchange.JWS
)

func verifyParse(raw string) (*verifyParsed, error) { return exchange.ParseJWS(raw) }

func verifyB64Decode(seg string) ([]byte, error) { return exchange.DecodeSegment(seg) }

func verifyString(m map[string]json.RawMessage, name string) (string, bool, error) {
	return exchange.JSONString(m, name)
}

func jwtShaped(raw string) bool { return exchange.JWTShaped(raw) }
