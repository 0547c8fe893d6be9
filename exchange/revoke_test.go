package exchange

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/cache"
)

// rvRequest is a request for aud with an umbrella token raw of subject sub,
// session sid ("" for none), issued at iat.
func rvRequest(raw, sub, sid string, iat time.Time) Request {
	c := Claims{Subject: sub, Expiry: ctStart.Add(time.Hour), IssuedAt: iat}
	if sid != "" {
		b, _ := json.Marshal(sid)
		c.Extra = map[string]json.RawMessage{"sid": b}
	}
	return Request{Subject: NewToken(raw, sha256.Sum256([]byte(raw)), c, ""), Audience: "https://orders", Scopes: []string{"orders:read"}}
}

func rvSetup(t *testing.T) (*ctEnv, *cache.Denylist, *prometheus.CounterVec) {
	t.Helper()
	deny := cache.NewDenylist(nil)
	counter := cache.NewMetrics(prometheus.NewRegistry()).Revocations
	env := ctSetup(t, func(o *CachingOptions) {
		o.Denylist, o.Revocations, o.KeySecret = deny, counter, []byte("0123456789abcdef0123456789abcdef")
		// The tokens of these tests are opaque values, as an introspecting issuer has.
		o.OpaqueTokens = true
	})
	return env, deny, counter
}

func TestCachingRevoke(t *testing.T) {
	before := ctStart.Add(-time.Minute)
	alice1 := rvRequest("umbrella-alice-1", "alice", "sess-1", before)
	alice2 := rvRequest("umbrella-alice-2", "alice", "sess-2", before)
	bob := rvRequest("umbrella-bob", "bob", "sess-3", before)
	tests := []struct {
		name    string
		rev     func() Revocation
		by      string
		refused []Request
		served  []Request
	}{
		{"subject", func() Revocation { return Revocation{Subject: "alice"} }, "sub",
			[]Request{alice1, alice2}, []Request{bob}},
		{"session", func() Revocation { return Revocation{Session: "sess-1"} }, "sid",
			[]Request{alice1}, []Request{alice2, bob}},
		{"token", func() Revocation { return Revocation{Token: "umbrella-alice-2"} }, "token",
			[]Request{alice2}, []Request{alice1, bob}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, _, counter := rvSetup(t)
			ctx := context.Background()
			for _, r := range []Request{alice1, alice2, bob} {
				ctExchange(t, env.c, r)
			}
			if env.mem.Len() != 3 {
				t.Fatalf("cached %d entries; want 3", env.mem.Len())
			}
			res, err := env.c.Revoke(ctx, tt.rev())
			if err != nil {
				t.Fatal(err)
			}
			if res.By.String() != tt.by || res.Dropped != len(tt.refused) {
				t.Errorf("Revoke = %+v; want by %s, %d dropped", res, tt.by, len(tt.refused))
			}
			if env.mem.Len() != len(tt.served) {
				t.Errorf("cache holds %d entries after the revocation; want %d", env.mem.Len(), len(tt.served))
			}
			calls := env.up.Calls()
			for _, r := range tt.refused {
				_, err := env.c.Exchange(ctx, r)
				var re *RejectError
				if !errors.As(err, &re) || re.Reason != ReasonRevoked || !errors.Is(err, ErrInvalidToken) {
					t.Errorf("Exchange of a revoked token: %v; want a %q rejection", err, ReasonRevoked)
				}
			}
			for _, r := range tt.served {
				ctExchange(t, env.c, r)
			}
			if env.up.Calls() != calls {
				t.Errorf("upstream called %d times after the revocation; want 0 (others served from the cache)", env.up.Calls()-calls)
			}
			if got := testutil.ToFloat64(counter.WithLabelValues(tt.by, "admin")); got != 1 {
				t.Errorf("tokengate_revocations_total{by=%s,source=admin} = %v; want 1", tt.by, got)
			}
		})
	}
}

// A new login after a subject's revocation (iat later) is served.
func TestCachingRevokeLaterLoginServed(t *testing.T) {
	env, _, _ := rvSetup(t)
	ctx := context.Background()
	if _, err := env.c.Revoke(ctx, Revocation{Subject: "alice"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		iat  time.Time
		ok   bool
	}{
		{"issued before", ctStart.Add(-time.Second), false},
		{"issued at the revocation", ctStart, false},
		{"no iat", time.Time{}, false},
		{"issued after", ctStart.Add(time.Second), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.c.Exchange(ctx, rvRequest("umbrella-"+tc.name, "alice", "", tc.iat))
			if (err == nil) != tc.ok {
				t.Errorf("Exchange: %v; want ok = %v", err, tc.ok)
			}
		})
	}
}

func TestCachingRevokeBadRequest(t *testing.T) {
	env, _, _ := rvSetup(t)
	for _, r := range []Revocation{{}, {Subject: "a", Session: "b"}, {Subject: "a", Token: "t"}} {
		if _, err := env.c.Revoke(context.Background(), r); !errors.Is(err, ErrBadRevocation) {
			t.Errorf("Revoke(%+v) = %v; want ErrBadRevocation", r, err)
		}
	}
}

// A revoked umbrella token is refused until its own exp, even past the
// revocation TTL.
func TestCachingRevokeTokenUntilItsExpiry(t *testing.T) {
	env, deny, _ := rvSetup(t)
	exp := ctStart.Add(72 * time.Hour).Unix()
	payload, _ := json.Marshal(map[string]any{"sub": "alice", "exp": exp})
	raw := "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(payload) + ".c2ln"
	res, err := env.c.Revoke(context.Background(), Revocation{Token: raw})
	if err != nil {
		t.Fatal(err)
	}
	if res.Until.Unix() != exp {
		t.Errorf("Until = %s; want the token's exp %s", res.Until, time.Unix(exp, 0))
	}
	if deny.Len() != 1 {
		t.Errorf("denylist holds %d; want 1", deny.Len())
	}
}

// Entries carry keyed hashes, never the values; replicas sharing the
// secret compute the same ones, others do not.
func TestCachingEntryHashes(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := ctSetup(t, func(o *CachingOptions) { o.KeySecret = secret })
	b := ctSetup(t, func(o *CachingOptions) { o.KeySecret = secret })
	other := ctSetup(t, func(o *CachingOptions) { o.KeySecret = []byte("another secret of 32 bytes......") })
	req := rvRequest("umbrella-raw-token", "alice@example.com", "session-42", ctStart)
	entryOf := func(env *ctEnv) cache.Entry {
		ctExchange(t, env.c, req)
		e, ok := env.mem.Get(context.Background(), env.c.cacheKey(req))
		if !ok {
			t.Fatal("no entry")
		}
		return e
	}
	ea, eb, eo := entryOf(a), entryOf(b), entryOf(other)
	for _, h := range []string{ea.SubjectHash, ea.SessionHash, ea.TokenHash} {
		if len(h) != 32 {
			t.Errorf("hash of %d bytes; want 32", len(h))
		}
		for _, raw := range []string{"alice@example.com", "session-42", "umbrella-raw-token"} {
			if strings.Contains(h, raw) {
				t.Errorf("a hash contains %q", raw)
			}
		}
	}
	if ea.SubjectHash != eb.SubjectHash || ea.SessionHash != eb.SessionHash || ea.TokenHash != eb.TokenHash {
		t.Error("two exchangers with the same secret computed different hashes")
	}
	if ea.SubjectHash == eo.SubjectHash || ea.TokenHash == eo.TokenHash {
		t.Error("exchangers with different secrets computed the same hash")
	}
	if ea.SubjectHash == ea.SessionHash {
		t.Error("subject and session hashes are not separated by field")
	}
	noSid := rvRequest("umbrella-2", "alice@example.com", "", ctStart)
	ctExchange(t, a.c, noSid)
	if e, _ := a.mem.Get(context.Background(), a.c.cacheKey(noSid)); e.SessionHash != "" || e.SubjectHash != ea.SubjectHash {
		t.Errorf("without sid: session hash %q, subject hash equal %v; want empty and equal", e.SessionHash, e.SubjectHash == ea.SubjectHash)
	}
}

// A revocation made while an exchange is in flight is not undone when the
// exchange stores its result.
func TestCachingRevokeDuringExchange(t *testing.T) {
	env, _, _ := rvSetup(t)
	ctx := context.Background()
	inFlight, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	env.up.SetHook(func(context.Context, int) error {
		if once.CompareAndSwap(false, true) {
			close(inFlight)
			<-release
		}
		return nil
	})
	req := rvRequest("umbrella-racing", "alice", "", ctStart.Add(-time.Minute))
	errc := make(chan error, 1)
	go func() {
		_, err := env.c.Exchange(ctx, req)
		errc <- err
	}()
	<-inFlight
	if _, err := env.c.Revoke(ctx, Revocation{Subject: "alice"}); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-errc; !errors.Is(err, ErrInvalidToken) {
		t.Errorf("the racing exchange: %v; want a revocation rejection", err)
	}
	if env.mem.Len() != 0 {
		t.Errorf("the racing exchange stored its token (%d entries)", env.mem.Len())
	}
}

// Nothing is hashed on the hot path until something is revoked.
func BenchmarkCachingHitWithRevocations(b *testing.B) {
	for _, revoked := range []bool{false, true} {
		name := "none revoked"
		if revoked {
			name = "one revoked"
		}
		b.Run(name, func(b *testing.B) {
			deny := cache.NewDenylist(nil)
			env := ctSetup(b, func(o *CachingOptions) { o.Denylist = deny })
			req := rvRequest("umbrella-bench", "alice", "s", ctStart)
			ctExchange(b, env.c, req)
			if revoked {
				if _, err := env.c.Revoke(context.Background(), Revocation{Subject: "mallory"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := env.c.Exchange(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The revocation hash is HMAC-SHA-256 over (field, big-endian length,
// value) with the key derived from KeySecret: replicas, old and new, name
// the same token the same way in Redis and in pub/sub, so the encoding may
// never change. The pooled HMAC gives what a fresh one gives, every time.
func TestRevocationHashEncodingIsStable(t *testing.T) {
	c := ctSetup(t).c
	want := func(by cache.Field, value string) string {
		m := hmac.New(sha256.New, c.revokeKey)
		m.Write([]byte{byte(by)})
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(value))))
		m.Write([]byte(value))
		return string(m.Sum(nil))
	}
	for range 3 { // again, through the pool
		for _, tc := range []struct {
			by    cache.Field
			value string
		}{{cache.BySubject, "alice"}, {cache.ByClient, ""}, {cache.ByIssuer, "https://idp.example"}, {cache.ByToken, string(make([]byte, 32))}} {
			if got := c.revocationHash(tc.by, []byte(tc.value)); got != want(tc.by, tc.value) {
				t.Fatalf("revocationHash(%v, %q) changed", tc.by, tc.value)
			}
		}
		v := binary.BigEndian.AppendUint64(nil, uint64(len("iss")))
		if c.keyHash("iss", "kid") != want(cache.ByKey, string(append(append(v, "iss"...), "kid"...))) {
			t.Fatal("keyHash changed")
		}
	}
}
