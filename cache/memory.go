package cache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
)

// sweepPerSet bounds how many expired entries at the cold end of the LRU one
// Set removes, so expired entries that are never read again still leave
// (and stop counting in the gauge) without a background sweeper.
const sweepPerSet = 2

// Memory is the in-process cache tier: at most maxEntries entries, least
// recently used evicted first, each entry living until its own ExpiresAt.
// It is safe for concurrent use.
//
// It wraps golang-lru's simplelru.LRU under one mutex rather than lru.Cache
// (which is the same list behind its own lock) so that "read, find expired,
// delete" and "look at the oldest, remove it if expired" are atomic: with
// lru.Cache a concurrent Set landing between the two calls would be deleted.
type Memory struct {
	now func() time.Time

	mu  sync.Mutex
	lru *simplelru.LRU[string, *Entry] // pointers: a hit copies the entry once, not in every frame

	// Pre-bound children keep the hot path free of label lookups.
	hits, misses prometheus.Counter
	purged       *prometheus.CounterVec // nil without metrics
}

// NewMemory returns an empty memory tier holding at most maxEntries entries.
// clock defaults to time.Now; m may be nil (no metrics).
func NewMemory(maxEntries int, clock func() time.Time, m *Metrics) (*Memory, error) {
	if maxEntries <= 0 {
		return nil, fmt.Errorf("new memory cache: max entries must be positive, got %d", maxEntries)
	}
	l, err := simplelru.NewLRU[string, *Entry](maxEntries, nil)
	if err != nil {
		return nil, fmt.Errorf("new memory cache: %w", err)
	}
	if clock == nil {
		clock = time.Now
	}
	c := &Memory{now: clock, lru: l}
	if m != nil {
		c.hits = m.Requests.WithLabelValues(TierMemory, ResultHit)
		c.misses = m.Requests.WithLabelValues(TierMemory, ResultMiss)
		c.purged = m.Purged
		m.entries.trackMemory(TierMemory, c)
	} else {
		c.hits = prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered_hits"})
		c.misses = prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered_misses"})
	}
	return c, nil
}

// Get returns the entry stored under key, marking it recently used. An entry
// at or past its ExpiresAt is never returned: it is deleted on the spot.
func (c *Memory) Get(_ context.Context, key string) (Entry, bool) {
	e, ok := c.lookup(key)
	if !ok {
		c.misses.Inc()
		return Entry{}, false
	}
	c.hits.Inc()
	return e, true
}

// Find is Get, except that LookupRecheck does not count a request in
// tokengate_cache_requests_total: the caller has already counted its
// lookup of key and looks once more (the caching exchanger, inside its
// single flight, in case another flight stored the entry meanwhile).
// Counting both would report every miss twice. The memory tier is local,
// so LookupLocal is LookupAll.
func (c *Memory) Find(ctx context.Context, key string, how Lookup) (Entry, bool) {
	if how == LookupRecheck {
		return c.lookup(key)
	}
	return c.Get(ctx, key)
}

// lookup finds key, deleting it on the spot when it has expired.
func (c *Memory) lookup(key string) (Entry, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(key)
	if !ok {
		return Entry{}, false
	}
	if !now.Before(e.ExpiresAt) {
		c.lru.Remove(key)
		return Entry{}, false
	}
	return *e, true
}

// Set stores e under key, replacing any entry there and evicting the least
// recently used entry when full. An entry already at or past its ExpiresAt
// is ignored.
func (c *Memory) Set(_ context.Context, key string, e Entry) {
	now := c.now()
	if !now.Before(e.ExpiresAt) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	stored := e // entries are never changed once stored
	c.lru.Add(key, &stored)
	for range sweepPerSet {
		_, oldest, ok := c.lru.GetOldest()
		if !ok || now.Before(oldest.ExpiresAt) {
			break
		}
		c.lru.RemoveOldest()
	}
}

// Delete removes the entry stored under key, if any.
func (c *Memory) Delete(_ context.Context, key string) {
	c.mu.Lock()
	c.lru.Remove(key)
	c.mu.Unlock()
}

// Len is the number of entries held, including expired ones not yet deleted.
func (c *Memory) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// revokeChunk is how many entries Revoke examines per hold of the lock, so
// a revocation over a full cache never stalls the hot path for long.
const revokeChunk = 1024

// Revoke drops every entry whose rev.By hash is rev.Hash and returns how
// many it dropped (the error is always nil: the memory tier cannot fail). It scans the cache in chunks, releasing the lock between them:
// revocations are rare admin actions, and a scan costs no memory per entry
// (a secondary index would; see docs/redis.md for the figures). Entries set
// while it runs are not dropped: the exchanger refuses to store tokens of a
// revoked umbrella token, so none can match.
func (c *Memory) Revoke(_ context.Context, rev Revocation) (int, error) {
	by, hash := rev.By, rev.Hash
	if !by.valid() || hash == "" {
		return 0, nil
	}
	c.mu.Lock()
	keys := c.lru.Keys()
	c.mu.Unlock()
	dropped := 0
	for len(keys) > 0 {
		n := min(revokeChunk, len(keys))
		c.mu.Lock()
		for _, k := range keys[:n] {
			if e, ok := c.lru.Peek(k); ok && by.of(e) == hash {
				c.lru.Remove(k)
				dropped++
			}
		}
		c.mu.Unlock()
		keys = keys[n:]
	}
	if c.purged != nil && dropped > 0 {
		c.purged.WithLabelValues(by.Cause(), TierMemory).Add(float64(dropped))
	}
	return dropped, nil
}
