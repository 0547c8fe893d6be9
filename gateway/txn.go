package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
)

// headerTxnToken carries a Transaction Token (draft-ietf-oauth-transaction-
// tokens-10, "Txn-Token" HTTP Header). Only tokengate sets it: a client's is always
// removed before forwarding.
const headerTxnToken = "Txn-Token"

// TxnMinter makes the Transaction Token of one edge request: sign.LocalTxn
// (local mode) or sts.RemoteTxn (remote mode). Errors as for Exchanger:
// a *exchange.RejectError (401), exchange.ErrExchangeDenied (403), anything
// else is an outage (503, fail closed).
type TxnMinter interface {
	MintTxnToken(ctx context.Context, req exchange.TxnRequest) (*exchange.TxnResult, error)
}

// Results of tokengate_txn_tokens_total.
const (
	txnResultOK       = "ok"
	txnResultRejected = "rejected" // the umbrella token cannot have one, or the STS refused: 401 / 403
	txnResultError    = "error"    // no Txn-Token could be made: 503
)

// routeTxn is how a route forwards Txn-Tokens; nil on access_token routes.
type routeTxn struct {
	// access: forward both, the exchanged token in Authorization too.
	access   bool
	ok       prometheus.Counter
	rejected prometheus.Counter
	failed   prometheus.Counter
	duration prometheus.Observer
}

// setupTxn binds the Txn-Token settings of every route that forwards one.
// routes were built from cfgs in order.
func (g *Gateway) setupTxn(cfgs []config.Route, minter TxnMinter) error {
	for i, c := range cfgs {
		if !c.ForwardsTxnToken() {
			continue
		}
		if minter == nil {
			return fmt.Errorf("routes[%d].forward: %q needs a Txn-Token minter: set txn_token.trust_domain", i, c.Forward)
		}
		rt := g.routes[i]
		rt.txn = &routeTxn{
			access:   c.ForwardsAccessToken(),
			ok:       g.metrics.TxnTokens.WithLabelValues(rt.name, txnResultOK),
			rejected: g.metrics.TxnTokens.WithLabelValues(rt.name, txnResultRejected),
			failed:   g.metrics.TxnTokens.WithLabelValues(rt.name, txnResultError),
			duration: g.metrics.TxnDuration.WithLabelValues(rt.name),
		}
	}
	g.txnMinter = minter
	return nil
}

// authorizeEdge takes an edge request from the umbrella token to what is
// forwarded: the exchanged token (access_token, both) and the Txn-Token
// (txn_token, both). Nothing is forwarded unless it returns nil.
func (g *Gateway) authorizeEdge(ctx context.Context, raw string, r *http.Request, rt *route, st *requestState) error {
	if rt.txn == nil || rt.txn.access {
		res, err := g.grant(ctx, raw, &rt.policy.self, nil, st)
		if err != nil {
			return err
		}
		st.exchanged = res.AccessToken
		if rt.txn == nil {
			return nil
		}
		return g.mintTxn(ctx, raw, r, rt, st, st.exReq.Subject)
	}
	// txn_token only: the same admission (policy, DPoP binding), but no
	// exchange.
	req, err := g.admit(ctx, raw, &rt.policy.self, nil, st)
	if err != nil {
		return err
	}
	return g.mintTxn(ctx, raw, r, rt, st, req.Subject)
}

// mintTxn makes the request's Txn-Token and makes its txn the request id.
func (g *Gateway) mintTxn(ctx context.Context, raw string, r *http.Request, rt *route, st *requestState, subject *exchange.Token) error {
	start := g.clock()
	rctx := txnContext(r, rt)
	if st.from == entryAuthz {
		// The peer is the proxy in front: the client is who
		// server.trusted_proxies says it is (forwarded.go).
		rctx.IP = g.proxies.clientIP(r)
	}
	res, err := g.txnMinter.MintTxnToken(ctx, exchange.TxnRequest{
		Subject: subject,
		Scopes:  rt.txnScopes(subject.Claims.Scopes),
		Context: rctx,
	})
	rt.txn.duration.Observe(g.clock().Sub(start).Seconds())
	switch {
	case err == nil && (res == nil || res.Token == "" || !saneRequestID(res.Txn)):
		err = fmt.Errorf("%w: the minter returned no usable Txn-Token", exchange.ErrTxnUnavailable)
		fallthrough
	case err != nil:
		var re *exchange.RejectError
		if errors.As(err, &re) || errors.Is(err, exchange.ErrExchangeDenied) {
			rt.txn.rejected.Inc()
		} else {
			rt.txn.failed.Inc()
		}
		return redact(fmt.Errorf("txn token: %w", err), raw)
	}
	rt.txn.ok.Inc()
	st.txnToken = res.Token
	// The txn is the request id: in the access log, X-Request-Id upstream and
	// back to the client. A client's own id is only logged beside it.
	if v := r.Header[headerRequestID]; len(v) == 1 && v[0] == st.requestID {
		st.clientRequestID = v[0]
	}
	st.requestID = res.Txn
	st.rw.Header().Set(headerRequestID, res.Txn)
	return nil
}

// txnScopes are the umbrella token's scopes that belong to the route, as
// the umbrella token writes them (strip_scope_prefix does not apply): a
// Txn-Token's scope is never wider than the umbrella token's.
func (rt *route) txnScopes(umbrella []string) []string {
	var out []string
	for _, s := range umbrella {
		if _, ok := rt.policy.owns(s); ok {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// txnContext is the rctx of the request: the client's address from the
// connection (never X-Forwarded-For, which the client writes), the
// transport, the method and the route.
func txnContext(r *http.Request, rt *route) exchange.TxnContext {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	transport := "http"
	if r.TLS != nil {
		transport = "https"
	}
	return exchange.TxnContext{IP: ip, Transport: transport, Method: r.Method, Route: rt.name}
}

// newTxnMetrics are the Txn-Token collectors of Metrics.
func newTxnMetrics(reg prometheus.Registerer) (*prometheus.CounterVec, *prometheus.HistogramVec) {
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_txn_tokens_total",
		Help: "Transaction Tokens minted or requested for edge requests, by route and result (ok, rejected, error).",
	}, []string{"route", "result"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tokengate_txn_token_duration_seconds",
		Help:    "Time to mint (local) or obtain (remote) a Transaction Token, by route.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route"})
	reg.MustRegister(tokens, duration)
	return tokens, duration
}
