package exchange

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Introspection results: the result label of tokengate_introspections_total
// and tokengate_introspection_cache_hits_total.
const (
	IntrospectionActive   = "active"
	IntrospectionInactive = "inactive"
	IntrospectionError    = "error"
)

// IntrospectionMetrics are the collectors of RFC 7662 introspection.
type IntrospectionMetrics struct {
	// Calls counts calls to the introspection endpoint by result: active,
	// inactive (active false, or claims tokengate refuses) or error (an outage).
	Calls *prometheus.CounterVec
	// Duration observes one introspection call.
	Duration prometheus.Histogram
	// CacheHits counts tokens answered from the introspection cache, by the
	// cached result (active, inactive).
	CacheHits *prometheus.CounterVec
}

// newIntrospectionMetrics registers the introspection collectors; every
// result exists from the start, so alerts on errors see a zero.
func newIntrospectionMetrics(f promauto.Factory) *IntrospectionMetrics {
	m := &IntrospectionMetrics{
		Calls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_introspections_total",
			Help: "Calls to the RFC 7662 introspection endpoint, by result (active, inactive, error).",
		}, []string{"result"}),
		Duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tokengate_introspection_duration_seconds",
			Help:    "Time of one call to the introspection endpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		CacheHits: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_introspection_cache_hits_total",
			Help: "Opaque tokens answered from the introspection cache, by cached result (active, inactive).",
		}, []string{"result"}),
	}
	for _, r := range []string{IntrospectionActive, IntrospectionInactive, IntrospectionError} {
		m.Calls.WithLabelValues(r)
	}
	m.CacheHits.WithLabelValues(IntrospectionActive)
	m.CacheHits.WithLabelValues(IntrospectionInactive)
	return m
}
