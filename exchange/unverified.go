package exchange

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// unverifiedExpiry reads exp from a compact JWS WITHOUT verifying it. It is
// only ever used to bound a lifetime, never to trust a token: how long an STS
// token is cached (capped by the umbrella's exp as well), and how long a
// revoked token stays refused (a forged exp can only make that longer). ok is
// false when there is no positive, plausible numeric exp.
func unverifiedExpiry(raw string) (time.Time, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil || *claims.Exp <= 0 || *claims.Exp > math.MaxInt32*4 {
		return time.Time{}, false
	}
	return time.Unix(int64(*claims.Exp), 0), true
}
