package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

// ErrReplayUnavailable is returned by ReplayGuard.Fresh when the shared
// replay store cannot answer and cache.redis.required is set: the proof
// can be neither accepted (it may be a replay elsewhere) nor refused.
var ErrReplayUnavailable = errors.New("dpop replay store unavailable")

// ErrReplayFull is returned by MemoryReplay.Check when every key it holds
// is still unexpired: evicting one would let that proof be replayed, so
// the new proof is refused instead (fail closed).
var ErrReplayFull = errors.New("dpop replay memory is full of unexpired proofs")

// opReplay is the op label of the replay SET NX in the Redis metrics.
const opReplay = "dpop_replay"

// replayWarnEvery rate-limits the warning about a failing shared store.
const replayWarnEvery = 10 * time.Second

// ReplayMetrics are the replay guard's collectors; create them once per
// process and share them across reloads.
type ReplayMetrics struct {
	// StoreErrors counts shared-store (Redis) failures of the replay check:
	// each one fell back to this replica's memory (or failed closed when
	// cache.redis.required).
	StoreErrors prometheus.Counter
	// MemoryFull counts proofs refused because the memory store held
	// server.dpop.replay_max_entries unexpired proofs (and no shared store
	// could decide alone).
	MemoryFull prometheus.Counter
}

// NewReplayMetrics registers the replay collectors on reg (nil registers nothing).
func NewReplayMetrics(reg prometheus.Registerer) *ReplayMetrics {
	f := promauto.With(reg)
	return &ReplayMetrics{
		StoreErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "tokengate_dpop_replay_store_errors_total",
			Help: "DPoP replay checks whose shared store (Redis) failed; each fell back to memory, or failed closed when cache.redis.required.",
		}),
		MemoryFull: f.NewCounter(prometheus.CounterOpts{
			Name: "tokengate_dpop_replay_memory_full_total",
			Help: "DPoP proofs refused (503) because the memory replay store held server.dpop.replay_max_entries unexpired proofs.",
		}),
	}
}

// MemoryReplay remembers replay keys in this process: at most maxEntries,
// each until its own expiry. An unexpired key is never evicted: when the
// store is full of them a new key is refused (ErrReplayFull), since
// forgetting a key would let its proof be replayed. It is safe for
// concurrent use.
type MemoryReplay struct {
	now func() time.Time
	mu  sync.Mutex
	max int // the bound: no new key once this many are held
	// capacity is the LRU's size, at least max: SetBound never shrinks it,
	// since the LRU would then evict unexpired keys.
	capacity int
	lru      *simplelru.LRU[string, time.Time]
}

// NewMemoryReplay returns an empty store of at most maxEntries keys.
func NewMemoryReplay(maxEntries int, clock func() time.Time) (*MemoryReplay, error) {
	l, err := simplelru.NewLRU[string, time.Time](maxEntries, nil)
	if err != nil {
		return nil, fmt.Errorf("new memory replay store: %w", err)
	}
	if clock == nil {
		clock = time.Now
	}
	return &MemoryReplay{now: clock, max: maxEntries, capacity: maxEntries, lru: l}, nil
}

// SetBound changes the bound in place (a reload that changes
// server.dpop.replay_max_entries), keeping every key: forgetting one would
// let its proof be replayed. A lower bound than the keys held refuses new
// keys until enough expire.
func (m *MemoryReplay) SetBound(maxEntries int) error {
	if maxEntries < 1 {
		return fmt.Errorf("memory replay store bound %d: must be positive", maxEntries)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.max = maxEntries
	if maxEntries > m.capacity {
		m.lru.Resize(maxEntries) // growing evicts nothing
		m.capacity = maxEntries
	}
	return nil
}

// Fresh records key for ttl and reports whether it was not already
// recorded (and unexpired): true the first time, false for a replay. The
// error is ErrReplayFull: the key could not be recorded.
func (m *MemoryReplay) Fresh(key string, ttl time.Duration) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if exp, ok := m.lru.Peek(key); ok && now.Before(exp) {
		return false, nil
	}
	// Expired keys at the cold end leave without a sweeper.
	for range sweepPerSet {
		_, exp, ok := m.lru.GetOldest()
		if !ok || now.Before(exp) {
			break
		}
		m.lru.RemoveOldest()
	}
	if m.lru.Len() >= m.max && !m.lru.Contains(key) {
		if _, exp, _ := m.lru.GetOldest(); now.Before(exp) {
			return false, ErrReplayFull
		}
	}
	m.lru.Add(key, now.Add(ttl))
	return true, nil
}

// Len is the number of keys held (expired ones included until swept).
func (m *MemoryReplay) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// FreshProof records a replay key in Redis for ttl with SET NX PX, through
// the tier's breaker and timeout: true when the key was new, false when
// another request (on any replica) recorded it first.
func (r *Redis) FreshProof(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	var set bool
	err := r.call(ctx, opReplay, func(ctx context.Context) error {
		var err error
		set, err = r.client.SetNX(ctx, r.prefix+"dpop:"+key, "1", ttl).Result()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dpop replay set: %w", err)
	}
	return set, nil
}

// SharedReplay is a replay store every replica sees (Redis).
type SharedReplay interface {
	FreshProof(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// ReplayGuard checks replay keys in memory and, when set, in a shared store.
// Every key is recorded in memory too, so a Redis outage still refuses
// replays on this replica.
type ReplayGuard struct {
	memory   *MemoryReplay
	shared   SharedReplay // nil without cache.redis
	required bool
	errs     prometheus.Counter
	full     prometheus.Counter
	log      *slog.Logger
	now      func() time.Time
	lastWarn atomic.Int64
	// memoryGapUntil (unix nanoseconds): until then, some key the shared
	// store accepted is missing from memory (memory was full), so memory
	// alone cannot refuse every replay and a shared-store failure must
	// fail closed even when the store is optional.
	memoryGapUntil atomic.Int64
}

// ReplayGuardOptions are the dependencies of NewReplayGuard.
type ReplayGuardOptions struct {
	Memory *MemoryReplay // required
	Shared SharedReplay  // optional
	// Required fails closed (ErrReplayUnavailable) when Shared fails.
	Required bool
	Metrics  *ReplayMetrics // nil: not counted
	Logger   *slog.Logger   // nil: discarded
	Clock    func() time.Time
}

// NewReplayGuard returns a guard over opts.Memory and opts.Shared.
func NewReplayGuard(opts ReplayGuardOptions) (*ReplayGuard, error) {
	if opts.Memory == nil {
		return nil, errors.New("new replay guard: no memory store")
	}
	g := &ReplayGuard{memory: opts.Memory, shared: opts.Shared, required: opts.Required, log: opts.Logger, now: opts.Clock}
	if opts.Metrics != nil {
		g.errs, g.full = opts.Metrics.StoreErrors, opts.Metrics.MemoryFull
	} else {
		g.errs = prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered_replay_errors"})
		g.full = prometheus.NewCounter(prometheus.CounterOpts{Name: "unregistered_replay_memory_full"})
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	return g, nil
}

// Fresh records key for ttl and reports whether no request recorded it
// before. Its error wraps ErrReplayUnavailable when no store could record
// the key: the shared store down and required, or down while the memory
// store is full, or the memory store full without a shared store, or down
// while memory misses a key it accepted when full (that proof could be
// replayed here). A shared-store failure otherwise falls back to memory,
// which holds every other key this replica accepted.
func (g *ReplayGuard) Fresh(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	fresh, memErr := g.memory.Fresh(key, ttl)
	switch {
	case memErr == nil && !fresh:
		return false, nil
	case memErr != nil:
		g.full.Inc()
		if g.shared == nil {
			return false, fmt.Errorf("%w: %w", ErrReplayUnavailable, memErr)
		}
	case g.shared == nil:
		return true, nil
	}
	// The shared store decides; with the memory full it decides alone.
	fresh, err := g.shared.FreshProof(ctx, key, ttl)
	if err == nil {
		if fresh && memErr != nil {
			g.noteMemoryGap(ttl)
		}
		return fresh, nil
	}
	g.errs.Inc()
	if now := g.now().UnixNano(); now-g.lastWarn.Load() >= int64(replayWarnEvery) {
		g.lastWarn.Store(now)
		g.log.LogAttrs(ctx, slog.LevelWarn, "dpop replay check: the shared store failed; checking this replica's memory only",
			slog.Bool("required", g.required), slog.String("error", err.Error()))
	}
	if g.required || memErr != nil {
		return false, fmt.Errorf("%w: %w", ErrReplayUnavailable, errors.Join(err, memErr))
	}
	if g.now().UnixNano() < g.memoryGapUntil.Load() {
		// A proof accepted while memory was full is only in the shared
		// store: memory accepting this key proves nothing.
		return false, fmt.Errorf("%w: %w (and this replica's memory missed proofs while it was full)", ErrReplayUnavailable, err)
	}
	return true, nil
}

// noteMemoryGap records that a key valid for ttl is in the shared store
// only.
func (g *ReplayGuard) noteMemoryGap(ttl time.Duration) {
	until := g.now().Add(ttl).UnixNano()
	for {
		cur := g.memoryGapUntil.Load()
		if cur >= until || g.memoryGapUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}
