package gateway

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tokengate/tokengate/exchange"
)

// noRouteLabel is the route label of requests that matched no route.
const noRouteLabel = "_none"

// Native histogram settings of the duration histograms: a bucket per ~10%
// growth, at most 160 buckets per series (resolution halves past that), and
// no reset more often than hourly.
const (
	nativeBucketFactor = 1.1
	nativeMaxBuckets   = 160
	nativeMinReset     = time.Hour
)

// Metrics are the gateway's collectors. Create them once per process with
// NewMetrics and share them across configuration reloads (a registry refuses
// a second registration of the same name). Labels are route names from the
// configuration and a closed set of reasons: never paths or subjects.
type Metrics struct {
	// Requests counts edge requests by route and status code.
	Requests *prometheus.CounterVec
	// RequestDuration observes the whole edge request, by route.
	RequestDuration *prometheus.HistogramVec
	// UpstreamDuration observes the upstream round trip until its response
	// headers (or its failure), by route.
	UpstreamDuration *prometheus.HistogramVec
	// TokenRejections counts refused tokens by reason.
	TokenRejections *prometheus.CounterVec
	// TxnTokens counts Transaction Tokens by route and result; TxnDuration
	// observes how long making one took, by route (gateway/txn.go).
	TxnTokens   *prometheus.CounterVec
	TxnDuration *prometheus.HistogramVec
	// ComponentDegraded is 1 for each degraded part of the gateway (an
	// issuer whose JWKS refresh failed, Redis, the STS) and 0 for each
	// healthy one; the admin handler sets it (AdminOptions.Degraded).
	ComponentDegraded *prometheus.GaugeVec
	// AuthzDecisions counts authz decisions by route, the HTTP status
	// decided and protocol (http, grpc); AuthzDuration observes them by
	// protocol (gateway/authz.go).
	AuthzDecisions *prometheus.CounterVec
	AuthzDuration  *prometheus.HistogramVec
}

// NewMetrics registers the gateway collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		Requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_requests_total",
			Help: "Edge requests, by route (_none when no route matched) and status code.",
		}, []string{"route", "code"}),
		RequestDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokengate_request_duration_seconds",
			Help:    "Time to serve an edge request, by route.",
			Buckets: buckets,
			// Native histogram alongside the classic buckets: scrapers that
			// negotiate protobuf get ~10% resolution at any latency.
			NativeHistogramBucketFactor:     nativeBucketFactor,
			NativeHistogramMaxBucketNumber:  nativeMaxBuckets,
			NativeHistogramMinResetDuration: nativeMinReset,
		}, []string{"route"}),
		UpstreamDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "tokengate_upstream_duration_seconds",
			Help:                            "Time until the upstream's response headers (or its failure), by route.",
			Buckets:                         buckets,
			NativeHistogramBucketFactor:     nativeBucketFactor,
			NativeHistogramMaxBucketNumber:  nativeMaxBuckets,
			NativeHistogramMinResetDuration: nativeMinReset,
		}, []string{"route"}),
		TokenRejections: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tokengate_token_rejections_total",
			Help: "Refused umbrella tokens, by reason.",
		}, []string{"reason"}),
	}
	m.TxnTokens, m.TxnDuration = newTxnMetrics(reg)
	m.ComponentDegraded = f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokengate_component_degraded",
		Help: "1 while a part the gateway depends on is degraded (an issuer's JWKS, Redis, the STS), 0 while it is healthy, by component as /readyz names it.",
	}, []string{"component"})
	m.AuthzDecisions = f.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_authz_decisions_total",
		Help: "Decisions made for a proxy in front (forward-auth, ext_authz), by route (_none when no route matched), HTTP status decided and protocol (http, grpc).",
	}, []string{"route", "code", "protocol"})
	m.AuthzDuration = f.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokengate_authz_duration_seconds",
		Help:    "Time to make an authz decision, by protocol (http, grpc).",
		Buckets: buckets,
	}, []string{"protocol"})
	// Known reasons exist from the start, so rate() and alerts see a zero.
	for _, r := range []string{
		exchange.ReasonMalformed, exchange.ReasonTooLarge, exchange.ReasonAlgorithm,
		exchange.ReasonSignature, exchange.ReasonUnknownKey, exchange.ReasonIssuer,
		exchange.ReasonExpired, exchange.ReasonNotYetValid, exchange.ReasonAudience,
		exchange.ReasonCrit, exchange.ReasonBinding, reasonPolicy,
		exchange.ReasonInactive,
		ReasonDPoPProof, ReasonDPoPReplay, ReasonDPoPNonce, ReasonDPoPRequired, ReasonDPoPUnbound,
		ReasonBody, ReasonPath, ReasonCredentials, ReasonMissing, ReasonOriginal,
	} {
		m.TokenRejections.WithLabelValues(r)
	}
	return m
}

func (m *Metrics) rejection(reason string) prometheus.Counter {
	return m.TokenRejections.WithLabelValues(reason)
}

// routeObservers are one route's collectors, bound at construction so the
// hot path does no label lookups.
type routeObservers struct {
	name     string
	duration prometheus.Observer
	upstream prometheus.Observer
	vec      *prometheus.CounterVec
	// codes caches the requests_total counter per status code (100..599),
	// created on first use so only codes that occur become series.
	codes *[500]atomic.Pointer[counter]
}

type counter struct{ prometheus.Counter }

func (m *Metrics) forRoute(name string) routeObservers {
	return routeObservers{
		name:     name,
		duration: m.RequestDuration.WithLabelValues(name),
		upstream: m.UpstreamDuration.WithLabelValues(name),
		vec:      m.Requests,
		codes:    new([500]atomic.Pointer[counter]),
	}
}

// forEndpoint is forRoute for a handler without an upstream (the token
// endpoint): no upstream_duration series.
func (m *Metrics) forEndpoint(name string) routeObservers {
	return routeObservers{
		name:     name,
		duration: m.RequestDuration.WithLabelValues(name),
		vec:      m.Requests,
		codes:    new([500]atomic.Pointer[counter]),
	}
}

// requests returns the requests_total counter of this route and code.
func (o *routeObservers) requests(code int) prometheus.Counter {
	if code < 100 || code > 599 {
		return o.vec.WithLabelValues(o.name, strconv.Itoa(code))
	}
	slot := &o.codes[code-100]
	if c := slot.Load(); c != nil {
		return c.Counter
	}
	c := &counter{o.vec.WithLabelValues(o.name, strconv.Itoa(code))}
	slot.Store(c) // a racing store holds the same child counter: harmless
	return c.Counter
}
