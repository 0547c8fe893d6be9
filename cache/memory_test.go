package cache_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/cache/cachetest"
	"github.com/tokengate/tokengate/internal/clocktest"
)

func TestMemoryConformance(t *testing.T) {
	newMem := func(t *testing.T, now func() time.Time) cachetest.Cache {
		c, err := cache.NewMemory(1000, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cachetest.Run(t, newMem)
	t.Run("revoke", func(t *testing.T) { cachetest.RunRevoke(t, newMem) })
}

// fakeClock is the shared test clock.
type fakeClock = clocktest.Clock

func newFakeClock() *fakeClock { return clocktest.New() }

func newMemory(t testing.TB, maxEntries int, clk *fakeClock, m *cache.Metrics) *cache.Memory {
	t.Helper()
	c, err := cache.NewMemory(maxEntries, clk.Now, m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func entryAt(clk *fakeClock, token string, ttl time.Duration) cache.Entry {
	now := clk.Now()
	return cache.Entry{Token: token, TokenType: "urn:ietf:params:oauth:token-type:access_token",
		IssuedAt: now, ExpiresAt: now.Add(ttl)}
}

func TestNewMemoryRejectsBadSize(t *testing.T) {
	for _, n := range []int{0, -1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if _, err := cache.NewMemory(n, nil, nil); err == nil {
				t.Fatalf("NewMemory(%d) succeeded; want an error", n)
			}
		})
	}
}

func TestMemoryNilClockUsesTime(t *testing.T) {
	c, err := cache.NewMemory(1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.Set(ctx, "k", cache.Entry{Token: "t", ExpiresAt: time.Now().Add(time.Hour)})
	if _, ok := c.Get(ctx, "k"); !ok {
		t.Fatal("miss with the real clock")
	}
	c.Set(ctx, "old", cache.Entry{Token: "t", ExpiresAt: time.Now().Add(-time.Second)})
	if _, ok := c.Get(ctx, "old"); ok {
		t.Fatal("expired entry served with the real clock")
	}
}

func TestMemoryLRUEviction(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	c := newMemory(t, 3, clk, nil)
	for _, k := range []string{"a", "b", "c"} {
		c.Set(ctx, k, entryAt(clk, "tok-"+k, time.Hour))
	}
	c.Get(ctx, "a") // a becomes most recently used: b is now the oldest
	c.Set(ctx, "d", entryAt(clk, "tok-d", time.Hour))
	if got := c.Len(); got != 3 {
		t.Fatalf("Len = %d; want 3 (the bound)", got)
	}
	for _, tt := range []struct {
		key  string
		want bool
	}{{"a", true}, {"b", false}, {"c", true}, {"d", true}} { // reads in this order: a c d, oldest first
		if _, ok := c.Get(ctx, tt.key); ok != tt.want {
			t.Errorf("Get(%s) present = %v; want %v", tt.key, ok, tt.want)
		}
	}
	// Overwriting refreshes recency without growing the cache.
	c.Set(ctx, "c", entryAt(clk, "tok-c2", time.Hour)) // oldest first: a d c
	c.Set(ctx, "e", entryAt(clk, "tok-e", time.Hour))
	if _, ok := c.Get(ctx, "a"); ok {
		t.Error("a survived; want it evicted as least recently used")
	}
	if e, ok := c.Get(ctx, "c"); !ok || e.Token != "tok-c2" {
		t.Errorf("Get(c) = %q, %v; want tok-c2, true", e.Token, ok)
	}
}

func TestMemoryBoundUnderLoad(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	const max = 100
	c := newMemory(t, max, clk, nil)
	for i := range 10 * max {
		c.Set(ctx, fmt.Sprint(i), entryAt(clk, "t", time.Hour))
		if n := c.Len(); n > max {
			t.Fatalf("Len = %d after %d sets; want <= %d", n, i+1, max)
		}
	}
	// The newest max keys are the ones kept.
	for i := 9 * max; i < 10*max; i++ {
		if _, ok := c.Get(ctx, fmt.Sprint(i)); !ok {
			t.Fatalf("recent key %d evicted", i)
		}
	}
}

func TestMemoryMetrics(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	reg := prometheus.NewPedanticRegistry()
	m := cache.NewMetrics(reg)
	c := newMemory(t, 2, clk, m)
	hits := m.Requests.WithLabelValues(cache.TierMemory, cache.ResultHit)
	misses := m.Requests.WithLabelValues(cache.TierMemory, cache.ResultMiss)

	type want struct{ entries, hits, misses float64 }
	check := func(step string, w want) {
		t.Helper()
		if got := testutil.ToFloat64(m.Entries); got != w.entries {
			t.Errorf("%s: tokengate_cache_entries = %v; want %v", step, got, w.entries)
		}
		if got := testutil.ToFloat64(hits); got != w.hits {
			t.Errorf("%s: hits = %v; want %v", step, got, w.hits)
		}
		if got := testutil.ToFloat64(misses); got != w.misses {
			t.Errorf("%s: misses = %v; want %v", step, got, w.misses)
		}
	}

	check("empty", want{0, 0, 0})
	c.Get(ctx, "a")
	check("miss", want{0, 0, 1})
	c.Set(ctx, "a", entryAt(clk, "ta", time.Minute))
	c.Set(ctx, "a", entryAt(clk, "ta2", time.Minute))
	check("set and overwrite", want{1, 0, 1})
	c.Get(ctx, "a")
	check("hit", want{1, 1, 1})
	c.Set(ctx, "b", entryAt(clk, "tb", 2*time.Minute))
	c.Set(ctx, "c", entryAt(clk, "tc", 2*time.Minute)) // evicts a
	check("evict", want{2, 1, 1})
	c.Set(ctx, "x", entryAt(clk, "tx", 0)) // already expired: ignored
	check("expired set", want{2, 1, 1})
	clk.Advance(2 * time.Minute)
	c.Get(ctx, "b") // expired: a miss that deletes it
	check("expire", want{1, 1, 2})
	c.Delete(ctx, "c")
	check("delete", want{0, 1, 2})

	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	const exposition = `
# HELP tokengate_cache_entries Entries held by a cache tier, by tier.
# TYPE tokengate_cache_entries gauge
tokengate_cache_entries{tier="memory"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(exposition), "tokengate_cache_entries"); err != nil {
		t.Error(err)
	}
}

// Expired entries nobody reads again still leave: Set drops expired entries
// at the cold end of the list, so the gauge does not count dead tokens forever.
func TestMemorySetSweepsExpired(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	m := cache.NewMetrics(nil)
	c := newMemory(t, 10, clk, m)
	c.Set(ctx, "short1", entryAt(clk, "t", time.Second))
	c.Set(ctx, "short2", entryAt(clk, "t", time.Second))
	c.Set(ctx, "long", entryAt(clk, "t", time.Hour))
	clk.Advance(time.Second)
	c.Set(ctx, "new", entryAt(clk, "t", time.Hour))
	if got := c.Len(); got != 2 {
		t.Errorf("Len = %d; want 2 (long, new)", got)
	}
	if got := testutil.ToFloat64(m.Entries); got != 2 {
		t.Errorf("entries gauge = %v; want 2", got)
	}
}

// The gauge follows the live cache across a reload: a replaced cache stops
// counting once it is collected.
func TestMetricsEntriesAcrossReload(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	m := cache.NewMetrics(prometheus.NewRegistry())
	old := newMemory(t, 10, clk, m)
	old.Set(ctx, "a", entryAt(clk, "t", time.Hour))
	old.Set(ctx, "b", entryAt(clk, "t", time.Hour))
	cur := newMemory(t, 10, clk, m)
	cur.Set(ctx, "c", entryAt(clk, "t", time.Hour))
	if got := testutil.ToFloat64(m.Entries); got != 3 {
		t.Fatalf("entries with both caches live = %v; want 3", got)
	}
	runtime.KeepAlive(old)
	old = nil
	runtime.GC()
	if got := testutil.ToFloat64(m.Entries); got != 1 {
		t.Errorf("entries after the old cache is collected = %v; want 1", got)
	}
	runtime.KeepAlive(cur)
}

func BenchmarkMemoryGetHit(b *testing.B) {
	ctx := context.Background()
	clk := newFakeClock()
	c := newMemory(b, 1000, clk, cache.NewMetrics(prometheus.NewRegistry()))
	key := string(randBytes(b, 32))
	c.Set(ctx, key, entryAt(clk, strings.Repeat("t", 700), time.Hour))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(ctx, key); !ok {
			b.Fatal("miss")
		}
	}
}

func BenchmarkMemoryGetHitParallel(b *testing.B) {
	ctx := context.Background()
	clk := newFakeClock()
	c := newMemory(b, 1000, clk, cache.NewMetrics(prometheus.NewRegistry()))
	key := string(randBytes(b, 32))
	c.Set(ctx, key, entryAt(clk, strings.Repeat("t", 700), time.Hour))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := c.Get(ctx, key); !ok {
				b.Error("miss")
				return
			}
		}
	})
}

// TestMemoryBytesPerEntry measures what one entry costs beyond its payload
// (32-byte key and a token of realistic size, both allocated beforehand) and
// fails if the bookkeeping grows past a generous bound.
func TestMemoryBytesPerEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~20 MB")
	}
	const n, tokenLen = 20000, 800 // an ES256 JWT with a few claims is 600-900 bytes
	ctx := context.Background()
	clk := newFakeClock()
	keys := make([]string, n)
	entries := make([]cache.Entry, n)
	for i := range n {
		keys[i] = string(randBytes(t, 32))
		e := entryAt(clk, string(randBytes(t, tokenLen/2))+strings.Repeat("x", tokenLen/2), time.Hour)
		e.Scope = "orders:read orders:write" // a config string: shared, not per entry
		entries[i] = e
	}
	c := newMemory(t, n, clk, nil)

	before := heapAlloc()
	for i := range n {
		c.Set(ctx, keys[i], entries[i])
	}
	after := heapAlloc()
	runtime.KeepAlive(c)
	runtime.KeepAlive(keys)
	runtime.KeepAlive(entries)

	overhead := float64(after-before) / n
	payload := float64(32 + tokenLen)
	t.Logf("memory tier: %.0f bytes/entry of bookkeeping + %.0f bytes of key and token = %.0f bytes/entry (%d entries ~ %.1f MB)",
		overhead, payload, overhead+payload, n, (overhead+payload)*n/1e6)
	if overhead > 400 {
		t.Errorf("bookkeeping = %.0f bytes/entry; want <= 400", overhead)
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMemoryRecheckIsNotCounted: the caching exchanger's second lookup of a
// key inside its flight must not count a second miss (or hit).
func TestMemoryRecheckIsNotCounted(t *testing.T) {
	clk := newFakeClock()
	m := cache.NewMetrics(prometheus.NewRegistry())
	c := newMemory(t, 10, clk, m)
	ctx := context.Background()
	if _, ok := c.Find(ctx, "k", cache.LookupRecheck); ok {
		t.Fatal("Recheck found a missing key")
	}
	c.Set(ctx, "k", entryAt(clk, "tok", time.Minute))
	if e, ok := c.Find(ctx, "k", cache.LookupRecheck); !ok || e.Token != "tok" {
		t.Fatalf("Recheck = %q, %v; want the stored entry", e.Token, ok)
	}
	clk.Advance(time.Minute)
	if _, ok := c.Find(ctx, "k", cache.LookupRecheck); ok {
		t.Fatal("Recheck returned an expired entry")
	}
	for _, result := range []string{cache.ResultHit, cache.ResultMiss} {
		if got := testutil.ToFloat64(m.Requests.WithLabelValues(cache.TierMemory, result)); got != 0 {
			t.Errorf("%s counted %v times by Recheck, want 0", result, got)
		}
	}
}
