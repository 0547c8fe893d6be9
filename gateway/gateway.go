// Package gateway is tokengate's HTTP face: the edge handler (routing, bearer
// extraction, per-route policy, exchange, reverse proxying), the one mapping
// from errors to RFC 6750 / RFC 9470 responses, the gateway metrics and the
// admin handler (metrics, health, JWKS, discovery). It knows nothing of how
// tokens are verified, signed or cached: it consumes Verifier and Exchanger.
package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

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
	for _, rt := range routes {
		rt.obs = g.metrics.forRoute(rt.name)
		rt.proxy = g.newProxy(rt)
	}
	g.routes = routes
	g.prefixesFolded = true
	for _, rt := range routes {
		g.prefixesFolded = g.prefixesFolded && rt.foldedPrefix == rt.prefix
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
		rt.transport.CloseIdleConnections()
	}
}

// requestState is everything one edge request carries from the handler to
// the proxy callbacks (through the request context) and to the access log.
// It embeds the status-recording ResponseWriter so a request costs one
// allocation for both.
type requestState struct {
	rw        statusWriter
	route     *route
	requestID string
	exchanged string // the exchanged token: only ever sent upstream
	exReq     exchange.Request
	clientID  string
	endpoint  bool   // a token endpoint request
	subject   string // set only when log.subjects is on
	reason    string // rejection reason for the log and metrics, "" when none
	err       error  // server-side failure, logged on 5xx
	start     time.Time
	upStart   time.Time
	upDone    bool
	// body records a client-side error reading the proxied body (nil
	// without a body), so it is answered 400, not 502.
	body *recordingBody

	// DPoP: the Authorization scheme (schemeBearer or schemeDPoP), and the
	// request as received (htm, htu before cleaning, the proof header).
	scheme string
	in     *http.Request
	// txnToken is the Txn-Token (gateway/txn.go): only ever sent upstream.
	txnToken string
	// clientRequestID is the client's X-Request-Id when the txn replaced it.
	clientRequestID string
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// ServeHTTP handles one edge request: route, bearer, verify, policy,
// exchange, forward. Every failure goes through g.fail and nothing is
// forwarded.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &requestState{start: g.clock()}
	st.rw.ResponseWriter = w
	st.requestID = requestID(r.Header)
	w.Header().Set(headerRequestID, st.requestID)
	defer g.finish(r, st)

	st.in = r
	// The path rules hold before any route is matched (gateway/path.go).
	if err := checkPath(requestPath(r)); err != nil {
		g.fail(&st.rw, r, st, err)
		return
	}
	r = canonicalRequest(r)
	// The token endpoint is matched exactly and before the routes, so no
	// route (not even path_prefix "/") can shadow it.
	if g.tokenPath != "" && r.URL.Path == g.tokenPath {
		st.endpoint = true
		g.serveToken(r, st)
		return
	}
	rt := g.match(r)
	if err := g.checkFold(r.Host, r.URL.Path, rt); err != nil {
		g.fail(&st.rw, r, st, err)
		return
	}
	if rt == nil {
		g.fail(&st.rw, r, st, errNoRoute)
		return
	}
	st.route = rt

	scheme, raw, err := requestCredentials(r)
	st.scheme = scheme
	if err != nil {
		g.fail(&st.rw, r, st, g.withDPoPChallenge(err, rt, scheme))
		return
	}
	ctx := r.Context()
	if err := g.authorizeEdge(ctx, raw, r, rt, st); err != nil {
		g.fail(&st.rw, r, st, g.withDPoPChallenge(err, rt, scheme))
		return
	}
	// A body broken from its first chunk is refused here, before anything
	// is forwarded; a later read error is found by upstreamFailed.
	if st.body, err = watchBody(r); err != nil {
		g.fail(&st.rw, r, st, err)
		return
	}

	st.upStart = g.clock()
	rt.proxy.ServeHTTP(&st.rw, r.WithContext(context.WithValue(ctx, stateKey{}, st)))
	if g.closed.Load() {
		// A new dial on a closed gateway's transport undoes Close's
		// CloseIdleConnections: release what this request pooled.
		rt.transport.CloseIdleConnections()
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

	if !g.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs,
		slog.String("route", obs.name),
		slog.String("method", r.Method),
		slog.Int("status", status),
		slog.Duration("duration", elapsed),
		slog.String("request_id", st.requestID),
		// Who the client is follows server.trusted_proxies (forwarded.go).
		slog.String("client_ip", g.proxies.clientIP(r)),
	)
	if st.clientRequestID != "" {
		attrs = append(attrs, slog.String("client_request_id", st.clientRequestID))
	}
	if st.clientID != "" {
		attrs = append(attrs, slog.String("client_id", st.clientID))
	}
	if st.subject != "" {
		attrs = append(attrs, slog.String("sub", st.subject))
	}
	if st.reason != "" {
		attrs = append(attrs, slog.String("reason", st.reason))
	}
	if st.err != nil && status >= 500 {
		attrs = append(attrs, slog.String("error", st.err.Error()))
	}
	g.logger.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}
