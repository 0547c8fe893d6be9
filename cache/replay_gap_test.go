package cache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/cache"
)

// switchableShared is a shared replay store that can be taken down: the
// ReplayGuard's consumed interface, not the unit under test.
type switchableShared struct {
	mu   sync.Mutex
	down bool
	keys map[string]bool
}

func (s *switchableShared) FreshProof(_ context.Context, key string, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return false, errors.New("connection refused")
	}
	if s.keys[key] {
		return false, nil
	}
	s.keys[key] = true
	return true, nil
}

// TestReplayGuardOutageAfterMemoryFull: a proof accepted by the shared
// store while this replica's memory was full is in the shared store only.
// When memory has room again and the (optional) shared store goes down, a
// replay of that proof on the same replica must not pass: memory has no
// record of it, so the guard fails closed until such proofs expire.
func TestReplayGuardOutageAfterMemoryFull(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	mem, err := cache.NewMemoryReplay(1, clock)
	if err != nil {
		t.Fatal(err)
	}
	shared := &switchableShared{keys: map[string]bool{}}
	g, err := cache.NewReplayGuard(cache.ReplayGuardOptions{Memory: mem, Shared: shared, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type step struct {
		name    string
		advance time.Duration
		down    bool
		key     string
		ttl     time.Duration // default a minute
		fresh   bool
		unavail bool // want ErrReplayUnavailable
	}
	steps := []step{
		{name: "filler fills memory", key: "filler", ttl: 30 * time.Second, fresh: true},
		{name: "memory full: the shared store accepts k alone", key: "k", fresh: true},
		{name: "filler expired, store down: replay of k", advance: 31 * time.Second, down: true, key: "k", unavail: true},
		{name: "store down: a new key fails closed too while k could be replayed", down: true, key: "n", unavail: true},
		{name: "k expired: memory alone decides again", advance: 2 * time.Minute, down: true, key: "m", fresh: true},
		{name: "and refuses its replay", down: true, key: "m"},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		shared.mu.Lock()
		shared.down = s.down
		shared.mu.Unlock()
		ttl := s.ttl
		if ttl == 0 {
			ttl = time.Minute
		}
		fresh, err := g.Fresh(ctx, s.key, ttl)
		if fresh != s.fresh || errors.Is(err, cache.ErrReplayUnavailable) != s.unavail || (err != nil && !s.unavail) {
			t.Errorf("%s: fresh=%v err=%v; want fresh=%v unavailable=%v", s.name, fresh, err, s.fresh, s.unavail)
		}
	}
}

// TestMemoryReplaySetBound: changing the bound keeps every key; a bound
// below the keys held refuses new keys until enough expire.
func TestMemoryReplaySetBound(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	m, err := cache.NewMemoryReplay(2, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	fresh := func(key string) (bool, error) { return m.Fresh(key, time.Minute) }
	steps := []struct {
		name  string
		bound int // 0: unchanged
		key   string
		fresh bool
		full  bool
	}{
		{name: "a", key: "a", fresh: true},
		{name: "b", key: "b", fresh: true},
		{name: "shrunk: a still a replay", bound: 1, key: "a"},
		{name: "shrunk: b still a replay", key: "b"},
		{name: "shrunk below the keys held: c refused", key: "c", full: true},
		{name: "grown: c fits", bound: 4, key: "c", fresh: true},
		{name: "grown: a still a replay", key: "a"},
		{name: "d fits", key: "d", fresh: true},
		{name: "full at the new bound", key: "e", full: true},
	}
	for _, s := range steps {
		if s.bound != 0 {
			if err := m.SetBound(s.bound); err != nil {
				t.Fatal(err)
			}
		}
		got, err := fresh(s.key)
		if got != s.fresh || errors.Is(err, cache.ErrReplayFull) != s.full {
			t.Errorf("%s: fresh=%v err=%v; want fresh=%v full=%v", s.name, got, err, s.fresh, s.full)
		}
	}
	if err := m.SetBound(0); err == nil {
		t.Error("SetBound(0) accepted")
	}
}
