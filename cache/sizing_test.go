package cache_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/redistest"
)

func hash32(t testing.TB) string { return string(randBytes(t, 32)) }

// realisticEntry is an ES256 exchanged token of 800 bytes with its three
// 32-byte keyed hashes, as the exchanger stores it.
func realisticEntry(t testing.TB, exp time.Time) cache.Entry {
	tok := make([]byte, 800)
	_, _ = rand.Read(tok)
	for i := range tok {
		tok[i] = 'a' + tok[i]%26
	}
	return cache.Entry{
		Token: string(tok), TokenType: "urn:ietf:params:oauth:token-type:access_token",
		Scope: "orders:read orders:write", IssuedAt: exp.Add(-5 * time.Minute), ExpiresAt: exp,
		SubjectHash: hash32(t), SessionHash: hash32(t), TokenHash: hash32(t),
	}
}

var usedMemory = regexp.MustCompile(`used_memory:(\d+)`)

// TestRedisBytesPerEntry measures what one entry costs in Redis: the sealed
// value under its hashed name, and the three revocation indexes (each entry
// here has its own subject, session and token, the worst case). The figures
// are in docs/redis.md.
func TestRedisBytesPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 5000 entries")
	}
	srv := redistest.Start(t)
	raw := srv.Client(t)
	client := newClient(t, srv.Addr())
	ctx := context.Background()
	r := newRedisTier(t, client, tierOpts{prefix: "tokengate:"})
	used := func() int64 {
		info := raw.Info(ctx, "memory").Val()
		m := usedMemory.FindStringSubmatch(info)
		if m == nil {
			t.Fatalf("no used_memory in INFO: %s", info)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	const n = 5000
	exp := time.Now().Add(time.Hour)
	entries := make([]cache.Entry, n)
	for i := range entries {
		entries[i] = realisticEntry(t, exp)
	}
	before := used()
	for i, e := range entries {
		r.Set(ctx, fmt.Sprint("key-", i), e)
	}
	after := used()
	perEntry := float64(after-before) / n

	var valueKey, indexKey int64
	keys, _ := dump(t, raw)
	for _, k := range keys {
		size := raw.MemoryUsage(ctx, k).Val()
		switch {
		case strings.HasPrefix(k, "tokengate:e:") && valueKey == 0:
			valueKey = size
			t.Logf("one value: %d bytes stored (%d bytes of token)", len(raw.Get(ctx, k).Val()), len(entries[0].Token))
		case strings.HasPrefix(k, "tokengate:i:") && indexKey == 0:
			indexKey = size
		}
	}
	t.Logf("redis tier, every entry its own subject, session and token (worst case): %.0f bytes/entry by used_memory "+
		"(MEMORY USAGE: value key %d, each index set %d); %d entries ~ %.1f MB",
		perEntry, valueKey, indexKey, n, perEntry*n/1e6)
	if perEntry < 800 || perEntry > 4000 {
		t.Errorf("%.0f bytes per entry is outside the expected 800..4000", perEntry)
	}

	// Typical: one umbrella token reaches 4 audiences, so 4 entries share
	// their subject, session and token indexes.
	if err := raw.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if i%4 != 0 {
			e := &entries[i]
			base := entries[i-i%4]
			e.SubjectHash, e.SessionHash, e.TokenHash = base.SubjectHash, base.SessionHash, base.TokenHash
		}
	}
	before = used()
	for i, e := range entries {
		r.Set(ctx, fmt.Sprint("key-", i), e)
	}
	shared := float64(used()-before) / n
	t.Logf("redis tier, 4 audiences per umbrella token: %.0f bytes/entry", shared)
	if shared >= perEntry {
		t.Errorf("shared indexes cost %.0f bytes/entry, not less than unshared %.0f", shared, perEntry)
	}
}

// BenchmarkMemoryRevoke100k: one revocation scanning a full memory tier of
// 100000 entries (the default max_entries).
func BenchmarkMemoryRevoke100k(b *testing.B) {
	ctx := context.Background()
	clk := newFakeClock()
	c := newMemory(b, 100000, clk, nil)
	for i := range 100000 {
		e := entryAt(clk, "t", time.Hour)
		e.SubjectHash = fmt.Sprint("sub-", i%5000)
		c.Set(ctx, fmt.Sprint("k", i), e)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Revoke(ctx, cache.Revocation{By: cache.BySubject, Hash: "absent"}); err != nil {
			b.Fatal(err)
		}
	}
}
