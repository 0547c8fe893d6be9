package verify

import (
	"context"
	"testing"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// BenchmarkIntrospectCacheHit: an opaque token answered from the cache
// (hash, shape check, LRU lookup, time and audience checks).
func BenchmarkIntrospectCacheHit(b *testing.B) {
	e := itNewEnv(b, nil)
	e.as.respond(e.members())
	ctx := context.Background()
	if _, err := e.v.Verify(ctx, itOpaque, vtAudOrders); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.v.Verify(ctx, itOpaque, vtAudOrders); err != nil {
			b.Fatal(err)
		}
	}
	if n := e.as.calls.Load(); n != 1 {
		b.Fatalf("the AS was called %d times", n)
	}
}

// BenchmarkIntrospectMiss: one full introspection over loopback HTTP per
// token (cache disabled by distinct tokens).
func BenchmarkIntrospectMiss(b *testing.B) {
	e := itNewEnv(b, nil)
	e.as.respond(e.members())
	ctx := context.Background()
	tokens := make([]string, 0, 1024)
	for i := range cap(tokens) {
		tokens = append(tokens, itOpaque+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := e.v.Verify(ctx, tokens[i%len(tokens)]+"-"+string(rune('A'+i/len(tokens)%26)), vtAudOrders); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkJWTShaped: what the shape check adds to a JWT's first verification.
func BenchmarkJWTShaped(b *testing.B) {
	k := oauthtest.NewSigningKey(b, "ES256", "k1")
	raw := k.Sign(b, nil, map[string]any{"iss": "https://idp.example.com", "aud": vtAudOrders})
	b.ReportAllocs()
	for b.Loop() {
		if !jwtShaped(raw) {
			b.Fatal("not JWT-shaped")
		}
	}
}
