package exchange

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
)

// rvReencode returns the other valid spelling of an ES256 JWS: the
// signature (r, s) becomes (r, n−s), which verifies just as well.
func rvReencode(t testing.TB, raw string) string {
	t.Helper()
	i := strings.LastIndexByte(raw, '.')
	sig, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("not an ES256 signature: %v", err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	out := append([]byte(nil), sig...)
	s.FillBytes(out[32:])
	return raw[:i+1] + base64.RawURLEncoding.EncodeToString(out)
}

// rvBase64 rewrites every segment of a compact JWS with enc (padding, the
// standard alphabet): not a token the verifier accepts, but a copy of one an
// operator may paste.
func rvBase64(t testing.TB, raw string, enc *base64.Encoding) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = enc.EncodeToString(b)
	}
	return strings.Join(parts, ".")
}

// A revocation by token covers every spelling of the token: revoked by one
// spelling, the other (ECDSA (r, n−s)) is refused too, and the cached
// tokens exchanged from either are dropped. With a jti and without.
func TestRevokeEverySpelling(t *testing.T) {
	tests := []struct {
		name        string
		jti         string
		revokeOther bool // revoke the re-encoded spelling, present the original
	}{
		{"jti, revoke original", "jti-1", false},
		{"jti, revoke re-encoded", "jti-1", true},
		{"no jti, revoke original", "", false},
		{"no jti, revoke re-encoded", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := vtNewEnv(t, nil)
			env, _, _ := rvSetup(t)
			ctx := context.Background()
			edit := func(c map[string]any) {
				if tc.jti != "" {
					c["jti"] = tc.jti
				}
			}
			orig := v.token(t, edit)
			other := rvReencode(t, orig)
			if other == orig {
				t.Fatal("re-encoding changed nothing")
			}
			bystander := v.token(t, func(c map[string]any) {
				edit(c)
				c["sub"] = "user-2"
				if tc.jti != "" {
					c["jti"] = "jti-2"
				}
			})
			var toks []*Token
			for _, raw := range []string{orig, other, bystander} {
				tok, err := v.v.Verify(ctx, raw, vtAudOrders)
				if err != nil {
					t.Fatalf("Verify: %v (both spellings must verify)", err)
				}
				toks = append(toks, tok)
				ctExchange(t, env.c, Request{Subject: tok, Audience: vtAudOrders})
			}
			if toks[0].Hash == toks[1].Hash {
				t.Fatal("the two spellings share a Hash; the test proves nothing")
			}
			revoked, presented := orig, toks[1]
			if tc.revokeOther {
				revoked, presented = other, toks[0]
			}
			res, err := env.c.Revoke(ctx, Revocation{Token: revoked})
			if err != nil {
				t.Fatal(err)
			}
			if res.Dropped != 2 {
				t.Errorf("Revoke dropped %d cached entries; want 2 (one per spelling)", res.Dropped)
			}
			for _, tok := range []*Token{presented, toks[0], toks[1]} {
				var re *RejectError
				if err := env.c.CheckRevoked(tok); !errors.As(err, &re) || re.Reason != ReasonRevoked {
					t.Errorf("CheckRevoked = %v; want a %q rejection", err, ReasonRevoked)
				}
				if _, err := env.c.Exchange(ctx, Request{Subject: tok, Audience: vtAudOrders}); !errors.As(err, &re) || re.Reason != ReasonRevoked {
					t.Errorf("Exchange = %v; want a %q rejection", err, ReasonRevoked)
				}
			}
			if err := env.c.CheckRevoked(toks[2]); err != nil {
				t.Errorf("CheckRevoked(another token) = %v; want nil", err)
			}
		})
	}
}

// The admin path (unverified) and the verified token agree on the identity.
func TestRevocationIdentityAgrees(t *testing.T) {
	v := vtNewEnv(t, nil)
	for _, jti := range []string{"", "jti-7"} {
		raw := v.token(t, func(c map[string]any) {
			if jti != "" {
				c["jti"] = jti
			}
		})
		tok, err := v.v.Verify(context.Background(), raw, vtAudOrders)
		if err != nil {
			t.Fatal(err)
		}
		for _, spelling := range []string{raw, rvReencode(t, raw), rvBase64(t, raw, base64.URLEncoding), rvBase64(t, raw, base64.StdEncoding)} {
			id, err := unverifiedIdentity(spelling, false)
			if err != nil {
				t.Fatal(err)
			}
			if id != tok.RevocationID() {
				t.Errorf("jti %q: unverified identity differs from the verified token's", jti)
			}
		}
	}
	// Same jti, other issuer: another token.
	a, _ := unverifiedIdentity(vtB64(`{"alg":"ES256"}`)+"."+vtB64(`{"iss":"https://a","jti":"1"}`)+".c2ln", false)
	b, _ := unverifiedIdentity(vtB64(`{"alg":"ES256"}`)+"."+vtB64(`{"iss":"https://b","jti":"1"}`)+".c2ln", false)
	if a == b {
		t.Error("tokens of two issuers with the same jti share an identity")
	}
}

// A token value that names no token the gateway could accept is a
// *BadRevocationError saying what is wrong, never naming the value; an
// opaque value is accepted only when an issuer introspects.
func TestRevokeBadTokenValues(t *testing.T) {
	jwt := vtB64(`{"alg":"ES256"}`) + "." + vtB64(`{"iss":"https://a","sub":"x"}`) + ".c2ln"
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
		{"JWT-shaped but not JSON", vtB64(`{"alg"`) + "." + vtB64("x") + ".c2ln", true, "not a JWT"},
		{"JWE", vtB64(`{"alg":"RSA-OAEP"}`) + ".a.b.c.d", true, "not a JWT"},
		{"iss not a string", vtB64(`{"alg":"ES256"}`) + "." + vtB64(`{"iss":1}`) + ".c2ln", false, "iss"},
		{"jti not a string", vtB64(`{"alg":"ES256"}`) + "." + vtB64(`{"jti":1}`) + ".c2ln", false, "jti"},
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
	raw := vtB64(`{"alg":"ES256"}`) + "." + vtB64(fmt.Sprintf(`{"iss":"https://a","sub":"alice","exp":%d}`, exp)) + ".c2lnbmF0dXJl"
	res, err := env.c.Revoke(context.Background(), Revocation{Token: rvBase64(t, raw, base64.URLEncoding)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Until.Unix() != exp {
		t.Errorf("Until = %s; want the token's exp %s", res.Until, time.Unix(exp, 0))
	}
}
