package cache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/internal/redistest"
)

func TestMemoryReplay(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m, err := cache.NewMemoryReplay(2, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		key     string
		advance time.Duration
		want    bool
	}{
		{"first use", "a", 0, true},
		{"replay", "a", 0, false},
		{"other key", "b", 0, true},
		{"replay just before expiry", "a", 59 * time.Second, false},
		{"after expiry the key is new again", "a", 2 * time.Second, true},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if got, err := m.Fresh(s.key, time.Minute); got != s.want || err != nil {
			t.Errorf("%s: Fresh(%q) = %v, %v; want %v", s.name, s.key, got, err, s.want)
		}
	}
	if m.Len() > 2 {
		t.Errorf("Len = %d, want at most the bound 2", m.Len())
	}
	if _, err := cache.NewMemoryReplay(0, nil); err == nil {
		t.Error("a zero bound is accepted")
	}
}

// TestReplayGuardRedis: two guards (two replicas) sharing one real Redis
// refuse each other's replays; each key expires with its TTL.
func TestReplayGuardRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	prefix := freshPrefix()
	guard := func() *cache.ReplayGuard {
		mem, err := cache.NewMemoryReplay(100, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := newRedisTier(t, newClient(t, srv.Addr()), tierOpts{prefix: prefix})
		g, err := cache.NewReplayGuard(cache.ReplayGuardOptions{Memory: mem, Shared: r})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	a, b := guard(), guard()
	if fresh, err := a.Fresh(ctx, "k1", time.Minute); err != nil || !fresh {
		t.Fatalf("A first use: %v, %v", fresh, err)
	}
	if fresh, err := b.Fresh(ctx, "k1", time.Minute); err != nil || fresh {
		t.Fatalf("B replay of A's proof: fresh=%v, %v; want refused", fresh, err)
	}
	if fresh, _ := a.Fresh(ctx, "k1", time.Minute); fresh {
		t.Fatal("A replay of its own proof accepted")
	}
	// The key is stored under the prefix, with a TTL.
	c := newClient(t, srv.Addr())
	ttl, err := c.PTTL(ctx, prefix+"dpop:k1").Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Errorf("PTTL = %v, %v; want a TTL of at most 1m", ttl, err)
	}
	if fresh, _ := b.Fresh(ctx, "k2", time.Minute); !fresh {
		t.Error("B first use of another key refused")
	}
}

// TestReplayGuardRedisDown: with Redis down, an optional Redis falls back to
// memory (still refusing replays here) and counts the failure; a required
// one fails closed.
func TestReplayGuardRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	for _, required := range []bool{false, true} {
		mem, _ := cache.NewMemoryReplay(100, nil)
		r := newRedisTier(t, newClient(t, srv.Addr()), tierOpts{timeout: 200 * time.Millisecond, backoff: time.Hour})
		m := cache.NewReplayMetrics(prometheus.NewRegistry())
		g, err := cache.NewReplayGuard(cache.ReplayGuardOptions{Memory: mem, Shared: r, Required: required, Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		srv.Kill()
		fresh, err := g.Fresh(ctx, "k", time.Minute)
		switch {
		case required && (!errors.Is(err, cache.ErrReplayUnavailable) || fresh):
			t.Errorf("required: fresh=%v, err=%v; want ErrReplayUnavailable", fresh, err)
		case !required && (err != nil || !fresh):
			t.Errorf("optional: fresh=%v, err=%v; want a memory-only accept", fresh, err)
		}
		if got := testutil.ToFloat64(m.StoreErrors); got != 1 {
			t.Errorf("required=%v: store errors = %v, want 1", required, got)
		}
		if fresh, _ := g.Fresh(ctx, "k", time.Minute); fresh {
			t.Errorf("required=%v: a replay accepted with Redis down (memory must remember it)", required)
		}
		srv.Restart()
	}
}

// TestMemoryReplayFullFailsClosed: an unexpired key is never evicted to
// make room, since its proof could then be replayed; the new key is
// refused until the oldest expires.
func TestMemoryReplayFullFailsClosed(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m, err := cache.NewMemoryReplay(2, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if fresh, err := m.Fresh(k, time.Minute); !fresh || err != nil {
			t.Fatalf("Fresh(%q) = %v, %v", k, fresh, err)
		}
	}
	if fresh, err := m.Fresh("c", time.Minute); fresh || !errors.Is(err, cache.ErrReplayFull) {
		t.Fatalf("third key in a full store: %v, %v; want ErrReplayFull", fresh, err)
	}
	if fresh, err := m.Fresh("a", time.Minute); fresh || err != nil {
		t.Errorf("replay of a in a full store: %v, %v; want refused as a replay", fresh, err)
	}
	now = now.Add(61 * time.Second)
	if fresh, err := m.Fresh("c", time.Minute); !fresh || err != nil {
		t.Errorf("after the old keys expired: %v, %v; want room again", fresh, err)
	}
}

// TestReplayGuardMemoryFull: a full memory store fails closed on its own,
// and leaves the decision to Redis when there is one; Redis down then
// fails closed even when Redis is optional.
func TestReplayGuardMemoryFull(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	full := func(t *testing.T) *cache.MemoryReplay {
		mem, _ := cache.NewMemoryReplay(1, nil)
		if fresh, err := mem.Fresh("filler", time.Hour); !fresh || err != nil {
			t.Fatal(fresh, err)
		}
		return mem
	}
	t.Run("memory only", func(t *testing.T) {
		m := cache.NewReplayMetrics(prometheus.NewRegistry())
		g, _ := cache.NewReplayGuard(cache.ReplayGuardOptions{Memory: full(t), Metrics: m})
		if fresh, err := g.Fresh(ctx, "k", time.Minute); fresh || !errors.Is(err, cache.ErrReplayUnavailable) {
			t.Errorf("fresh=%v, err=%v; want ErrReplayUnavailable", fresh, err)
		}
		if got := testutil.ToFloat64(m.MemoryFull); got != 1 {
			t.Errorf("memory full = %v, want 1", got)
		}
	})
	t.Run("Redis decides", func(t *testing.T) {
		r := newRedisTier(t, newClient(t, srv.Addr()), tierOpts{prefix: freshPrefix()})
		g, _ := cache.NewReplayGuard(cache.ReplayGuardOptions{Memory: full(t), Shared: r})
		if fresh, err := g.Fresh(ctx, "k", time.Minute); !fresh || err != nil {
			t.Errorf("first use: fresh=%v, err=%v", fresh, err)
		}
		if fresh, err := g.Fresh(ctx, "k", time.Minute); fresh || err != nil {
			t.Errorf("replay: fresh=%v, err=%v; want refused by Redis", fresh, err)
		}
	})
	t.Run("Redis down", func(t *testing.T) {
		r := newRedisTier(t, newClient(t, srv.Addr()), tierOpts{timeout: 200 * time.Millisecond, backoff: time.Hour})
		g, _ := cache.NewReplayGuard(cache.ReplayGuardOptions{Memory: full(t), Shared: r})
		srv.Kill()
		defer srv.Restart()
		if fresh, err := g.Fresh(ctx, "k", time.Minute); fresh || !errors.Is(err, cache.ErrReplayUnavailable) {
			t.Errorf("fresh=%v, err=%v; want ErrReplayUnavailable: no store recorded the key", fresh, err)
		}
	})
}
