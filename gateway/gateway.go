// Package gateway is tokengate's HTTP face: the edge handler (routing, bearer
// extraction, per-route policy, exchange, reverse proxying), the one mapping
// from errors to RFC 6750 / RFC 9470 responses, the gateway metrics and the
// admin handler (metrics, health, JWKS, discovery). It knows nothing of how
// tokens are verified, signed or cached: it consumes Verifier and Exchanger.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// Verifier verifies an umbrella token for one audience. Errors: a
// *exchange.RejectError for a bad token, exchange.ErrKeysUnavailable for an
// issuer outage; anything else is treated as an outage too (fail closed).
type Verifier interface {
	Verify(ctx context.Context, raw, audience string) (*exchange.Token, error)
}

// Exchanger obtains single-audience tokens. Invalidate drops the cached token
// for req, so the next request exchanges anew (called when an upstream
// answers 401 to it).
type Exchanger interface {
	Exchange(ctx context.Context, req exchange.Request) (*exchange.Result, error)
	Invalidate(ctx context.Context, req exchange.Request)
}

// Revocations refuses revoked umbrella tokens (exchange.Caching). It is a
// step of authorize, the one decision path, so every entry point (edge
// routes of every forward kind, the token endpoint) refuses a revoked token,
// memo and introspection-cache hits included. CheckRevoked returns a
// *exchange.RejectError (reason revoked) or nil, and must be cheap while
// nothing is revoked.
type Revocations interface {
	CheckRevoked(t *exchange.Token) error
}

// Options are the dependencies of New.
type Options struct {
	// Config is a validated configuration; New reads Server and Routes.
	Config *config.Config
	// Verifier and Exchanger are required.
	Verifier  Verifier
	Exchanger Exchanger
	// Logger receives the access log (one Info line per request); nil discards.
	Logger *slog.Logger
	// Metrics are shared across reloads; nil registers fresh collectors on a
	// private registry (tests).
	Metrics *Metrics
	// Clock is used for policy (max_age) and durations; nil means time.Now.
	Clock func() time.Time
	// DPoP are the replay store and nonce secret of DPoP (docs/dpop.md).
	DPoP DPoPOptions
	// TxnMinter makes Transaction Tokens; required when a route forwards one.
	TxnMinter TxnMinter
	// Revocations, when set, refuses revoked tokens in authorize. Nil means
	// nothing is ever revoked (tests, `tokengate check`).
	Revocations Revocations
	// UpstreamTLS are the TLS client configurations of routes with
	// routes[].tls, by index in Config.Routes (internal/server builds them,
	// with their files reloaded on change).
	UpstreamTLS map[int]*tls.Config
	// WrapTransport, when set, wraps each route's upstream transport (a
	// tracing CLIENT span, gateway/tracing.go); route is the route's name.
	WrapTransport func(route string, rt http.RoundTripper) http.RoundTripper
}

// Gateway is the edge http.Handler built from one configuration. A reload
// builds a new Gateway, swaps it in, and Closes the old one.
type Gateway struct {
	router        *mux.Router
	routes        []*route
	verifier      Verifier
	exchanger     Exchanger
	logger        *slog.Logger
	metrics       *Metrics
	noRoute       routeObservers
	tokenObs      func() *routeObservers // created on first use: no series without traffic
	tokenPath     string                 // "" when the token endpoint is disabled
	audiences     map[string]*target     // token endpoint targets by audience
	buffers       *bufferPool
	dpop          *dpopState
	proxies       trustedProxies // server.trusted_proxies (forwarded.go)
	clock         func() time.Time
	maxTokenBytes int
	// bodyTimeout bounds reading a body the gateway consumes (readBody).
	bodyTimeout time.Duration
	// tokenFold is the token endpoint's path folded (foldPath), and
	// prefixesFolded says every route prefix is its own fold: checkFold.
	tokenFold      string
	prefixesFolded bool
	// logSubjects adds the token's sub to the access log (log.subjects).
	logSubjects bool
	// authzPrefix is authz.path_prefix: stripped from a forward-auth
	// request's own path (Envoy http_service).
	authzPrefix string
	txnMinter   TxnMinter   // nil when no route forwards a Txn-Token
	revocations Revocations // nil: nothing is revoked
	// wrapTransport is Options.WrapTransport (nil: the bare transport).
	wrapTransport func(string, http.RoundTripper) http.RoundTripper
	// closed is set by Close: requests still running on this gateway (a
	// reload replaced it) then drop their upstream connections when done.
	closed atomic.Bool
}

// New builds the router and one reverse proxy (with its own transport) per
// route. It fails when a route cannot be built, naming the route's key path.
func New(opts Options) (*Gateway, error) {
	if opts.Config == nil {
		return nil, errors.New("gateway: Options.Config is required")
	}
	if opts.Verifier == nil || opts.Exchanger == nil {
		return nil, errors.New("gateway: Options.Verifier and Options.Exchanger are required")
	}
	g := &Gateway{
		verifier:      opts.Verifier,
		exchanger:     opts.Exchanger,
		logger:        opts.Logger,
		metrics:       opts.Metrics,
		clock:         opts.Clock,
		maxTokenBytes: opts.Config.Server.MaxTokenBytes,
		bodyTimeout:   opts.Config.Server.BodyTimeout.D(),
		logSubjects:   opts.Config.Log.Subjects,
		buffers:       &bufferPool{},
		revocations:   opts.Revocations,
		authzPrefix:   opts.Config.Authz.PathPrefix,
		wrapTransport: opts.WrapTransport,
	}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	if g.metrics == nil {
		g.metrics = NewMetrics(prometheus.NewRegistry())
	}
	if g.clock == nil {
		g.clock = time.Now
	}
	g.noRoute = g.metrics.forRoute(noRouteLabel)
	var err error
	if g.proxies, err = newTrustedProxies(opts.Config.Server.TrustedProxies); err != nil {
		return nil, err
	}
	if g.dpop, err = newDPoP(opts.Config.Server, g.proxies, opts.DPoP, g.clock); err != nil {
		return nil, err
	}

	routes, err := buildRoutes(opts.Config.Routes)
	if err != nil {
		return nil, err
	}
	for i, rt := range routes {
		rt.obs = g.metrics.forRoute(rt.name)
		rt.cors = newCORSPolicy(opts.Config.CORSFor(i))
		if rt.upstream != nil {
			rt.upstream.tlsConfig = opts.UpstreamTLS[i]
			rt.upstream.proxy = g.newProxy(rt)
		}
	}
	g.routes = routes
	g.prefixesFolded = true
	for _, rt := range routes {
		g.prefixesFolded = g.prefixesFolded && rt.match.foldedPrefix == rt.match.prefix
	}
	if err := g.setupTxn(opts.Config.Routes, opts.TxnMinter); err != nil {
		return nil, err
	}
	g.router = newRouter(routes)
	if err := g.newTokenEndpoint(opts.Config.Server.TokenEndpoint()); err != nil {
		return nil, err
	}
	return g, nil
}

// Close releases idle upstream connections. In-flight requests finish, and
// so do requests that picked this gateway before it was replaced; their
// connections are closed when they end rather than kept idle.
func (g *Gateway) Close() {
	g.closed.Store(true)
	for _, rt := range g.routes {
		if rt.upstream != nil {
			rt.upstream.transport.CloseIdleConnections()
		}
	}
}

// requestState is one request's decision (decide.go) and its record for
// the access log and metrics. The edge passes it from the handler to the
// proxy callbacks through the request context. It embeds the
// status-recording ResponseWriter so a request costs one allocation for
// everything.
type requestState struct {
	decision
	rw       statusWriter
	clientID string
	subject  string // set only when log.subjects is on
	reason   string // rejection reason for the log and metrics, "" when none
	err      error  // server-side failure, logged on 5xx
	start    time.Time
	upStart  time.Time
	upDone   bool
	// body records a client-side error reading the proxied body (nil
	// without a body), so it is answered 400, not 502.
	body *recordingBody
	// clientRequestID is the client's X-Request-Id when the txn replaced it.
	clientRequestID string
	// For the access log: the upstream's time to response headers (when
	// upDone), the request body read (nil without a body), and where the
	// exchanged token came from ("hit" from a cache tier, "miss"; "" none).
	upDur  time.Duration
	bodyIn *countingBody
	cache  string
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// ServeHTTP is the edge adapter over decide: it answers the decision's
// errors, serves the token endpoint and CORS preflights, and forwards an
// allowed request to the route's upstream. Nothing is forwarded unless
// decide allowed it.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &requestState{start: g.clock()}
	st.rw.ResponseWriter = w
	st.requestID = requestID(r.Header)
	w.Header().Set(headerRequestID, st.requestID)
	if r.Body != nil && r.Body != http.NoBody {
		// bytes_in counts what was read of the body, by the gateway or the
		// upstream transport (streaming bodies are never buffered).
		st.bodyIn = &countingBody{ReadCloser: r.Body}
		r.Body = st.bodyIn
	}
	defer g.finish(r, st)

	r, err := g.decide(r, st)
	g.corsHeaders(w.Header(), st)
	switch {
	case err != nil:
		g.fail(&st.rw, r, st, err)
		return
	case st.endpoint:
		g.serveToken(r, st)
		return
	case st.preflight:
		writePreflight(&st.rw, st)
		return
	}
	rt := st.route
	// A body broken from its first chunk is refused here, before anything
	// is forwarded; a later read error is found by upstreamFailed.
	if st.body, err = watchBody(r); err != nil {
		g.fail(&st.rw, r, st, err)
		return
	}

	st.upStart = g.clock()
	rt.upstream.proxy.ServeHTTP(&st.rw, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	if g.closed.Load() {
		// A new dial on a closed gateway's transport undoes Close's
		// CloseIdleConnections: release what this request pooled.
		rt.upstream.transport.CloseIdleConnections()
	}
}

// finish records metrics and writes the access log line. It runs deferred,
// so a streaming copy aborted with http.ErrAbortHandler is still counted.
func (g *Gateway) finish(r *http.Request, st *requestState) {
	status := st.rw.code()
	obs := &g.noRoute
	switch {
	case st.route != nil:
		obs = &st.route.obs
	case st.endpoint:
		obs = g.tokenObs()
	}
	elapsed := g.clock().Sub(st.start)
	ctx := r.Context()
	observeDuration(ctx, obs.duration, elapsed.Seconds())
	obs.requests(status).Inc()
	traceDecision(ctx, r, obs, st)

	g.logRequest(r, st, obs.name, status, elapsed, "")
}

// logRequest writes the access log line of one request; protocol is ""
// for the edge, "http" or "grpc" for an authz decision.
func (g *Gateway) logRequest(r *http.Request, st *requestState, routeName string, status int, elapsed time.Duration, protocol string) {
	ctx := r.Context()
	if !g.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	cacheOutcome := st.cache
	if cacheOutcome == "" || status >= 400 {
		cacheOutcome = cacheNone // nothing exchanged, or the request was refused
	}
	// The record is built here and handed to the handler: Logger.LogAttrs
	// would also walk the stack (runtime.Callers) for a source location
	// the access line never shows.
	rec := slog.NewRecord(time.Now(), slog.LevelInfo, "request", 0)
	rec.AddAttrs(
		slog.String("request_id", st.requestID),
		slog.String("route", routeName),
		slog.String("method", r.Method),
		// As the client sent it, without the query string (which may hold
		// anything, a token included); bounded like every logged input.
		slog.String("path", bounded(requestPath(r), maxLoggedPath)),
		slog.Int("status", status),
		slog.Float64("duration_ms", milliseconds(elapsed)),
		// Who the client is follows server.trusted_proxies (forwarded.go).
		slog.String("client_ip", g.proxies.clientIP(r)),
		slog.String("user_agent", bounded(r.UserAgent(), maxLoggedUserAgent)),
		slog.Int64("bytes_in", st.bodyIn.count()),
		slog.Int64("bytes_out", st.rw.written),
		slog.String("cache", cacheOutcome),
	)
	if st.upDone {
		rec.AddAttrs(slog.Float64("upstream_duration_ms", milliseconds(st.upDur)))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		// Tracing on and this request traced: the line leads to its trace.
		rec.AddAttrs(slog.String("trace_id", sc.TraceID().String()))
	}
	if protocol != "" {
		rec.AddAttrs(slog.String("authz", protocol))
	}
	if st.clientRequestID != "" {
		rec.AddAttrs(slog.String("client_request_id", st.clientRequestID))
	}
	if st.clientID != "" {
		rec.AddAttrs(slog.String("client_id", st.clientID))
	}
	if st.subject != "" {
		rec.AddAttrs(slog.String("sub", st.subject))
	}
	if st.reason != "" {
		rec.AddAttrs(slog.String("reason", st.reason))
	}
	if st.err != nil && status >= 500 {
		rec.AddAttrs(slog.String("error", st.err.Error()))
	}
	if isGRPC(r) {
		if gs := grpcStatusOf(&st.rw); gs != "" {
			rec.AddAttrs(slog.String("grpc_status", gs))
		}
	}
	_ = g.logger.Handler().Handle(ctx, rec) // a failed log write cannot fail the request
}

// Values of the access log's cache field.
const (
	cacheHit  = "hit"  // the exchanged token came from a cache tier (memory or Redis)
	cacheMiss = "miss" // it was exchanged for this request (or one it waited for)
	cacheNone = "none" // nothing was exchanged, or the request was refused
)

// Bounds of client-sent values written to the access log.
const (
	maxLoggedPath      = 1024
	maxLoggedUserAgent = 256
)

// bounded cuts s to at most max bytes (never inside a UTF-8 sequence), so a
// client cannot make one log line arbitrarily long.
func bounded(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// milliseconds is d as fractional milliseconds (duration_ms).
func milliseconds(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
