package verify

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// The revocation identity of a token value (what Revoke keys it under) must
// be the verified token's RevocationID for every spelling: these tests need
// the real verifier, so they live here.

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
			env := rvCaching(t, v)
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
			var toks []*exchange.Token
			for _, raw := range []string{orig, other, bystander} {
				tok, err := v.v.Verify(ctx, raw, vtAudOrders)
				if err != nil {
					t.Fatalf("Verify: %v (both spellings must verify)", err)
				}
				toks = append(toks, tok)
				rvExchange(t, env, exchange.Request{Subject: tok, Audience: vtAudOrders})
			}
			if toks[0].Hash == toks[1].Hash {
				t.Fatal("the two spellings share a Hash; the test proves nothing")
			}
			revoked, presented := orig, toks[1]
			if tc.revokeOther {
				revoked, presented = other, toks[0]
			}
			res, err := env.Revoke(ctx, exchange.Revocation{Token: revoked})
			if err != nil {
				t.Fatal(err)
			}
			if res.Dropped != 2 {
				t.Errorf("Revoke dropped %d cached entries; want 2 (one per spelling)", res.Dropped)
			}
			for _, tok := range []*exchange.Token{presented, toks[0], toks[1]} {
				var re *exchange.RejectError
				if err := env.CheckRevoked(tok); !errors.As(err, &re) || re.Reason != exchange.ReasonRevoked {
					t.Errorf("CheckRevoked = %v; want a %q rejection", err, exchange.ReasonRevoked)
				}
				if _, err := env.Exchange(ctx, exchange.Request{Subject: tok, Audience: vtAudOrders}); !errors.As(err, &re) || re.Reason != exchange.ReasonRevoked {
					t.Errorf("Exchange = %v; want a %q rejection", err, exchange.ReasonRevoked)
				}
			}
			if err := env.CheckRevoked(toks[2]); err != nil {
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
		for _, spelling := range []string{raw, rvReencode(t, raw), oauthtest.Reencode(t, raw, base64.URLEncoding), oauthtest.Reencode(t, raw, base64.StdEncoding)} {
			id, err := exchange.RevocationIDOf(spelling, false)
			if err != nil {
				t.Fatal(err)
			}
			if id != tok.RevocationID() {
				t.Errorf("jti %q: unverified identity differs from the verified token's", jti)
			}
		}
	}
	// Same jti, other issuer: another token.
	a, _ := exchange.RevocationIDOf(vtB64(`{"alg":"ES256"}`)+"."+vtB64(`{"iss":"https://a","jti":"1"}`)+".c2ln", false)
	b, _ := exchange.RevocationIDOf(vtB64(`{"alg":"ES256"}`)+"."+vtB64(`{"iss":"https://b","jti":"1"}`)+".c2ln", false)
	if a == b {
		t.Error("tokens of two issuers with the same jti share an identity")
	}
}

// rvCaching is a caching exchanger with a denylist over an upstream that
// mints one token per call, lasting as long as the umbrella token.
func rvCaching(t testing.TB, v *vtEnv) *exchange.Caching {
	t.Helper()
	mem, err := cache.NewMemory(1000, v.clock.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := exchange.NewCaching(&rvUpstream{}, exchange.CachingOptions{
		Cache: mem, Clock: v.clock.Now, Denylist: cache.NewDenylist(v.clock.Now),
		KeySecret: []byte("0123456789abcdef0123456789abcdef"),
		// As the original caching tests set it up (an introspecting issuer).
		OpaqueTokens: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rvUpstream mints "tok-N" for the Nth exchange.
type rvUpstream struct{ calls atomic.Int64 }

func (u *rvUpstream) Exchange(_ context.Context, req exchange.Request) (*exchange.Result, error) {
	return &exchange.Result{
		AccessToken: fmt.Sprintf("tok-%d", u.calls.Add(1)), IssuedTokenType: exchange.TokenTypeAccessToken,
		TokenType: "Bearer", ExpiresAt: req.Subject.Claims.Expiry,
	}, nil
}

func (u *rvUpstream) Fingerprint() string { return "rv" }

func rvExchange(t testing.TB, c *exchange.Caching, req exchange.Request) {
	t.Helper()
	if _, err := c.Exchange(context.Background(), req); err != nil {
		t.Fatalf("Exchange: %v", err)
	}
}
