// Package cachetest is the conformance suite every cache tier must pass, so
// the memory and Redis tiers cannot drift apart in what callers observe.
package cachetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/clocktest"
)

// Cache is the behaviour under test: the one store interface every tier
// implements (what the caching exchanger needs from it).
type Cache = cache.Store

// start is the fake clock's first reading: whole seconds in UTC, so a tier
// that serialises times exactly (unix nanoseconds, RFC 3339) round-trips it.
var start = clocktest.Start

// clock is the shared test clock, which the suite advances.
type clock = clocktest.Clock

// Run runs the conformance suite. newCache must return a new, empty cache
// (holding at least 64 entries) that reads the time from now only.
func Run(t *testing.T, newCache func(t *testing.T, now func() time.Time) Cache) {
	t.Helper()
	setup := func(t *testing.T) (Cache, *clock) {
		t.Helper()
		clk := clocktest.At(start)
		return newCache(t, clk.Now), clk
	}
	ctx := context.Background()
	entry := func(token string, ttl time.Duration) cache.Entry {
		return cache.Entry{
			Token:     token,
			TokenType: "urn:ietf:params:oauth:token-type:access_token",
			Scope:     "orders:read orders:write",
			IssuedAt:  start,
			ExpiresAt: start.Add(ttl),
		}
	}

	t.Run("miss", func(t *testing.T) {
		c, _ := setup(t)
		if e, ok := c.Find(ctx, "absent", cache.LookupAll); ok {
			t.Fatalf("Get(absent) = %+v, true; want a miss", e)
		}
	})

	t.Run("every lookup", func(t *testing.T) {
		// A stored entry is found by every kind of lookup (a tier's local
		// part holds what it was just given); a deleted one by none.
		c, _ := setup(t)
		c.Set(ctx, "k", entry("tok", time.Minute))
		for _, how := range []cache.Lookup{cache.LookupAll, cache.LookupLocal, cache.LookupRecheck} {
			if e, ok := c.Find(ctx, "k", how); !ok || e.Token != "tok" {
				t.Errorf("Find(k, %d) = %q, %v; want the stored entry", how, e.Token, ok)
			}
		}
		c.Delete(ctx, "k")
		for _, how := range []cache.Lookup{cache.LookupAll, cache.LookupLocal, cache.LookupRecheck} {
			if e, ok := c.Find(ctx, "k", how); ok {
				t.Errorf("Find(k, %d) after Delete = %q, true; want a miss", how, e.Token)
			}
		}
	})

	t.Run("round trip", func(t *testing.T) {
		tests := []struct {
			name string
			e    cache.Entry
		}{
			{"every field", cache.Entry{
				Token:          "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1MSJ9.sig",
				TokenType:      "urn:ietf:params:oauth:token-type:jwt",
				Scope:          "a b c",
				IssuedAt:       start.Add(-time.Second),
				ExpiresAt:      start.Add(5 * time.Minute),
				Capped:         true,
				SubjectHash:    "\x00subject-hash\xff",
				SessionHash:    "session-hash",
				TokenHash:      "token-hash",
				ClientHash:     "client-hash",
				IssuerHash:     "issuer-hash",
				KeyHash:        "key-hash",
				SigningKeyHash: "signing-key-hash",
			}},
			{"sub-second times", cache.Entry{
				Token:     "t",
				IssuedAt:  start.Add(123456789 * time.Nanosecond),
				ExpiresAt: start.Add(time.Minute + 987654321*time.Nanosecond),
			}},
			{"not capped", cache.Entry{
				Token:     "opaque-token",
				TokenType: "urn:ietf:params:oauth:token-type:access_token",
				Scope:     "orders:read",
				IssuedAt:  start,
				ExpiresAt: start.Add(time.Minute),
			}},
			{"empty strings", cache.Entry{Token: "t", ExpiresAt: start.Add(time.Minute)}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, _ := setup(t)
				c.Set(ctx, "k", tt.e)
				got, ok := c.Find(ctx, "k", cache.LookupAll)
				if !ok {
					t.Fatal("Get after Set: miss")
				}
				assertEqual(t, got, tt.e)
			})
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		c, _ := setup(t)
		c.Set(ctx, "k", entry("first", time.Minute))
		want := entry("second", 2*time.Minute)
		c.Set(ctx, "k", want)
		got, ok := c.Find(ctx, "k", cache.LookupAll)
		if !ok {
			t.Fatal("Get after overwrite: miss")
		}
		assertEqual(t, got, want)
	})

	t.Run("delete", func(t *testing.T) {
		c, _ := setup(t)
		c.Set(ctx, "k", entry("tok", time.Minute))
		c.Set(ctx, "other", entry("other", time.Minute))
		c.Delete(ctx, "k")
		if e, ok := c.Find(ctx, "k", cache.LookupAll); ok {
			t.Fatalf("Get after Delete = %+v, true; want a miss", e)
		}
		if _, ok := c.Find(ctx, "other", cache.LookupAll); !ok {
			t.Fatal("Delete(k) removed another key")
		}
		c.Delete(ctx, "never-set") // must not panic or fail
	})

	t.Run("expiry", func(t *testing.T) {
		c, clk := setup(t)
		c.Set(ctx, "k", entry("tok", 10*time.Second))
		clk.Advance(10*time.Second - time.Nanosecond)
		if _, ok := c.Find(ctx, "k", cache.LookupAll); !ok {
			t.Fatal("Get 1ns before ExpiresAt: miss; want a hit")
		}
		clk.Advance(time.Nanosecond)
		if e, ok := c.Find(ctx, "k", cache.LookupAll); ok {
			t.Fatalf("Get at ExpiresAt = %+v, true; want a miss", e)
		}
		clk.Advance(time.Hour)
		if _, ok := c.Find(ctx, "k", cache.LookupAll); ok {
			t.Fatal("Get after ExpiresAt: hit; want a miss")
		}
	})

	t.Run("already expired set ignored", func(t *testing.T) {
		tests := []struct {
			name string
			ttl  time.Duration
		}{
			{"expires now", 0},
			{"expired in the past", -time.Minute},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, _ := setup(t)
				c.Set(ctx, "k", entry("tok", tt.ttl))
				if e, ok := c.Find(ctx, "k", cache.LookupAll); ok {
					t.Fatalf("Get = %+v, true; want a miss", e)
				}
			})
		}
	})

	t.Run("arbitrary key bytes", func(t *testing.T) {
		c, _ := setup(t)
		mac := make([]byte, 32)
		for i := range mac {
			mac[i] = byte(255 - i*7)
		}
		keys := []string{
			string(mac), string(mac[:31]), "\x00", "\x00\x00", "", "a", "a\x00",
			"\xff\xfe\xfd", "line\nbreak", "sp ace", "tokengate:*", "{braces}",
		}
		for i, k := range keys {
			c.Set(ctx, k, entry(fmt.Sprintf("tok-%d", i), time.Minute))
		}
		for i, k := range keys {
			got, ok := c.Find(ctx, k, cache.LookupAll)
			if !ok {
				t.Errorf("Get(%q): miss", k)
				continue
			}
			if want := fmt.Sprintf("tok-%d", i); got.Token != want {
				t.Errorf("Get(%q).Token = %q; want %q", k, got.Token, want)
			}
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		c, clk := setup(t)
		const workers, ops, keys = 8, 300, 16
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range ops {
					k := fmt.Sprintf("key-%d", (w*31+i)%keys)
					switch i % 5 {
					case 0, 1:
						c.Set(ctx, k, entry("tok-"+k, time.Hour))
					case 2:
						c.Delete(ctx, k)
					case 3:
						clk.Advance(time.Millisecond)
						fallthrough
					default:
						if e, ok := c.Find(ctx, k, cache.LookupAll); ok && e.Token != "tok-"+k {
							t.Errorf("Get(%s).Token = %q; entry of another key", k, e.Token)
						}
					}
				}
			})
		}
		wg.Wait()
	})
}

// RunRevoke checks Revoke on a tier: exactly the entries whose hash for the
// field matches are dropped, for each field, and the count is right.
func RunRevoke(t *testing.T, newCache func(t *testing.T, now func() time.Time) Cache) {
	t.Helper()
	ctx := context.Background()
	e := func(token, sub, sid, tok string) cache.Entry {
		return cache.Entry{Token: token, IssuedAt: start, ExpiresAt: start.Add(time.Hour),
			SubjectHash: sub, SessionHash: sid, TokenHash: tok}
	}
	entries := map[string]cache.Entry{
		"k1": e("t1", "alice", "s1", "u1"),
		"k2": e("t2", "alice", "s1", "u2"),
		"k3": e("t3", "alice", "s2", "u3"),
		"k4": e("t4", "bob", "s3", "u1"), // same umbrella hash as k1: only possible in a test
		"k5": e("t5", "", "", ""),
	}
	tests := []struct {
		name string
		by   cache.Field
		hash string
		want []string // keys dropped
	}{
		{"subject", cache.BySubject, "alice", []string{"k1", "k2", "k3"}},
		{"session", cache.BySession, "s1", []string{"k1", "k2"}},
		{"token", cache.ByToken, "u1", []string{"k1", "k4"}},
		{"no match", cache.BySubject, "carol", nil},
		{"empty hash matches nothing", cache.BySession, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktest.At(start)
			c := newCache(t, clk.Now)
			for k, v := range entries {
				c.Set(ctx, k, v)
			}
			n, err := c.Revoke(ctx, cache.Revocation{By: tt.by, Hash: tt.hash, At: start, Until: start.Add(time.Hour)})
			if err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if n < len(tt.want) {
				t.Errorf("Revoke dropped %d entries; want at least %d", n, len(tt.want))
			}
			for k := range entries {
				_, present := c.Find(ctx, k, cache.LookupAll)
				if dropped := slices.Contains(tt.want, k); present == dropped {
					t.Errorf("after revoking %s %q: %s present = %v; want %v", tt.by, tt.hash, k, present, !dropped)
				}
			}
		})
	}
}

// entryFields is how many fields assertEqual compares: a new Entry field
// fails the suite until it is compared (and every tier stores it).
const entryFields = 13

func assertEqual(t *testing.T, got, want cache.Entry) {
	t.Helper()
	if n := reflect.TypeFor[cache.Entry]().NumField(); n != entryFields {
		t.Fatalf("cache.Entry has %d fields, the suite compares %d: update assertEqual", n, entryFields)
	}
	if got.Token != want.Token || got.TokenType != want.TokenType || got.Scope != want.Scope ||
		!got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) || got.Capped != want.Capped ||
		got.SubjectHash != want.SubjectHash || got.SessionHash != want.SessionHash || got.TokenHash != want.TokenHash ||
		got.ClientHash != want.ClientHash || got.IssuerHash != want.IssuerHash || got.KeyHash != want.KeyHash ||
		got.SigningKeyHash != want.SigningKeyHash {
		t.Errorf("entry = %+v\nwant    %+v", got, want)
	}
}
