package exchange

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// A token value that names no token the gateway could accept is a
// *BadRevocationError saying what is wrong, never naming the value; an
// opaque value is accepted only when an issuer introspects.
func TestRevokeBadTokenValues(t *testing.T) {
	jwt := rvB64(`{"alg":"ES256"}`) + "." + rvB64(`{"iss":"https://a","sub":"x"}`) + ".c2ln"
	tests := []struct {
		name   string
		token  string
		opaque bool
		want   string // "" means accepted
	}{
		{"blank", "   ", true, "blank"},
		{"not a JWT", "not-a-jwt", false, "not a JWT"},
		{"opaque with introspection", "not-a-jwt", true, ""},
		{"opaque token68 padding", "YWJj+/==", true, ""},
		{"opaque not token68", "two words", true, "b64token"},
		{"JWT-shaped but not JSON", rvB64(`{"alg"`) + "." + rvB64("x") + ".c2ln", true, "not a JWT"},
		{"JWE", rvB64(`{"alg":"RSA-OAEP"}`) + ".a.b.c.d", true, "not a JWT"},
		{"iss not a string", rvB64(`{"alg":"ES256"}`) + "." + rvB64(`{"iss":1}`) + ".c2ln", false, "iss"},
		{"jti not a string", rvB64(`{"alg":"ES256"}`) + "." + rvB64(`{"jti":1}`) + ".c2ln", false, "jti"},
		{"JWT", jwt, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := ctSetup(t, func(o *CachingOptions) { o.OpaqueTokens = tc.opaque })
			_, err := env.c.Revoke(context.Background(), Revocation{Token: tc.token})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Revoke: %v; want accepted", err)
				}
				return
			}
			var bad *BadRevocationError
			if !errors.As(err, &bad) || !errors.Is(err, ErrBadRevocation) || !strings.Contains(bad.Description, tc.want) {
				t.Fatalf("Revoke = %v; want a *BadRevocationError about %q", err, tc.want)
			}
			if strings.TrimSpace(tc.token) != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("the error names the token value: %v", err)
			}
		})
	}
}

// A padded copy of a token is refused for as long as the token lives, as
// the token itself is.
func TestRevokePaddedCopyUntilItsExpiry(t *testing.T) {
	env := ctSetup(t, func(o *CachingOptions) { o.Denylist = cache.NewDenylist(nil) })
	exp := ctStart.Add(72 * time.Hour).Unix()
	raw := rvB64(`{"alg":"ES256"}`) + "." + rvB64(fmt.Sprintf(`{"iss":"https://a","sub":"alice","exp":%d}`, exp)) + ".c2lnbmF0dXJl"
	res, err := env.c.Revoke(context.Background(), Revocation{Token: oauthtest.Reencode(t, raw, base64.URLEncoding)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Until.Unix() != exp {
		t.Errorf("Until = %s; want the token's exp %s", res.Until, time.Unix(exp, 0))
	}
}

// rvB64 is base64url without padding, as in a compact JWS.
func rvB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
