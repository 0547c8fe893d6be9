package cache

import (
	"sort"
	"sync"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Tier names: the tier label of the cache metrics.
const (
	TierMemory = "memory"
	TierRedis  = "redis"
	// TierMemo is the verifier's memo of verified umbrella tokens (a purge
	// label only).
	TierMemo = "memo"
)

// Results of a cache lookup: the result label of tokengate_cache_requests_total.
const (
	ResultHit   = "hit"
	ResultMiss  = "miss"
	ResultError = "error"
)

// Metrics are the cache package's collectors. Create them once per process
// with NewMetrics and share them across configuration reloads (a registry
// refuses a second registration of the same name).
type Metrics struct {
	// Requests counts lookups by tier and result (hit, miss, error).
	Requests *prometheus.CounterVec
	// Entries is the tokengate_cache_entries gauge, by tier. It is computed at
	// scrape time from the live caches, so it is exact through evictions,
	// expiries and reloads: a cache that is no longer reachable (replaced by
	// a reload) stops counting once it is garbage collected.
	Entries prometheus.Collector
	// RedisDuration observes each Redis call by op (get, set, delete,
	// revoke, publish, ping), failed ones included.
	RedisDuration *prometheus.HistogramVec
	// RedisErrors counts failed Redis calls by op; a call skipped because
	// the breaker is open is op "skipped".
	RedisErrors *prometheus.CounterVec
	// BreakerOpen is 1 while the Redis breaker skips Redis (open or probing
	// half-open), else 0.
	BreakerOpen prometheus.Gauge
	// Revocations counts revocations by field (sub, sid, token, client_id,
	// iss, key_removed, signing_key_removed) and source: "admin" (made on
	// this replica: by an admin, a JWKS refresh or a reload) or "peer"
	// (received from another).
	Revocations *prometheus.CounterVec
	// Purged counts entries dropped by a revocation or a key removal, by
	// cause (revoked, key_removed, signing_key_removed) and tier (memory,
	// redis, and memo: the verified-token memo).
	Purged *prometheus.CounterVec

	entries *entriesCollector
}

// NewMetrics registers the cache collectors on reg. A nil reg registers
// nothing (the collectors still work), as with promauto.With(nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ec := &entriesCollector{
		desc: prometheus.NewDesc("tokengate_cache_entries",
			"Entries held by a cache tier, by tier.", []string{"tier"}, nil),
		sources: map[string][]entriesSource{},
	}
	if reg != nil {
		reg.MustRegister(ec)
	}
	f := promauto.With(reg)
	m := &Metrics{
		Requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_cache_requests_total",
			Help: "Cache lookups, by tier and result (hit, miss, error).",
		}, []string{"tier", "result"}),
		Entries: ec,
		RedisDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokengate_redis_duration_seconds",
			Help:    "Duration of Redis calls, by op.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"op"}),
		RedisErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_redis_errors_total",
			Help: "Failed or skipped Redis calls, by op (skipped: the breaker is open).",
		}, []string{"op"}),
		BreakerOpen: f.NewGauge(prometheus.GaugeOpts{
			Name: "tokengate_redis_breaker_open",
			Help: "1 while the Redis circuit breaker skips Redis after repeated failures, else 0.",
		}),
		Revocations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_revocations_total",
			Help: "Revocations applied, by field (sub, sid, token, client_id, iss, key_removed, signing_key_removed) and source (admin, peer).",
		}, []string{"by", "source"}),
		Purged: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_purged_entries_total",
			Help: "Cached entries dropped by a revocation or a key removal, by cause (revoked, key_removed, signing_key_removed) and tier (memory, redis, memo).",
		}, []string{"cause", "tier"}),
		entries: ec,
	}
	return m
}

// entriesSource reports one cache's entry count, or alive=false once the
// cache has been garbage collected.
type entriesSource func() (n int, alive bool)

// entriesCollector sums the entry counts of every live cache of a tier at
// scrape time (a GaugeFunc per tier that survives reloads).
type entriesCollector struct {
	desc    *prometheus.Desc
	mu      sync.Mutex
	sources map[string][]entriesSource
}

// trackMemory counts m in the entries gauge of its tier. It holds m weakly so
// that a cache dropped by a reload neither leaks nor keeps being counted.
func (ec *entriesCollector) trackMemory(tier string, m *Memory) {
	wp := weak.Make(m)
	ec.mu.Lock()
	defer ec.mu.Unlock()
	ec.sources[tier] = append(ec.sources[tier], func() (int, bool) {
		c := wp.Value()
		if c == nil {
			return 0, false
		}
		return c.Len(), true
	})
}

// Describe implements prometheus.Collector.
func (ec *entriesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- ec.desc }

// Collect implements prometheus.Collector: one sample per tier ever tracked.
func (ec *entriesCollector) Collect(ch chan<- prometheus.Metric) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	tiers := make([]string, 0, len(ec.sources))
	for tier := range ec.sources {
		tiers = append(tiers, tier)
	}
	sort.Strings(tiers)
	for _, tier := range tiers {
		total := 0
		live := ec.sources[tier][:0]
		for _, src := range ec.sources[tier] {
			if n, alive := src(); alive {
				total += n
				live = append(live, src)
			}
		}
		clear(ec.sources[tier][len(live):])
		ec.sources[tier] = live
		ch <- prometheus.MustNewConstMetric(ec.desc, prometheus.GaugeValue, float64(total), tier)
	}
}
