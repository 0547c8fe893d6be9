package exchange

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the exchange package's collectors. Create them once per process
// with NewMetrics and share them across configuration reloads (a registry
// refuses a second registration of the same name).
type Metrics struct {
	// JWKSRefreshes counts JWKS fetches by issuer and result (ok, error).
	JWKSRefreshes *prometheus.CounterVec
	// JWKSKeysRemoved counts keys (kids) a JWKS refresh found removed, by issuer.
	JWKSKeysRemoved *prometheus.CounterVec
	// Exchanges counts exchanges by audience, mode and result (ok, error, ...).
	Exchanges *prometheus.CounterVec
	// ExchangeDuration observes how long an exchange (sign or STS call) took.
	ExchangeDuration *prometheus.HistogramVec
	// Introspection counts RFC 7662 calls and cache hits (introspect_metrics.go).
	Introspection *IntrospectionMetrics
}

// NewMetrics registers the exchange collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		JWKSRefreshes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_jwks_refreshes_total",
			Help: "Fetches of an issuer's JWKS, by issuer and result.",
		}, []string{"issuer", "result"}),
		JWKSKeysRemoved: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_jwks_keys_removed_total",
			Help: "Keys (kids) an issuer's JWKS refresh no longer held, by issuer: their tokens are refused from then on.",
		}, []string{"issuer"}),
		Exchanges: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_exchanges_total",
			Help: "Token exchanges performed (cache misses), by audience, mode and result.",
		}, []string{"audience", "mode", "result"}),
		ExchangeDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokengate_exchange_duration_seconds",
			Help:    "Time to obtain an exchanged token on a cache miss, by mode.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"mode"}),
		Introspection: newIntrospectionMetrics(f),
	}
}
