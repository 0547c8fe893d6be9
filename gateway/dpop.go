package gateway

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tokengate/tokengate/cache"
	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/dpop"
)

// DPoP rejection reasons (tokengate_token_rejections_total, docs/dpop.md).
const (
	// ReasonDPoPProof: the DPoP proof is missing, malformed, badly signed,
	// or does not match the request, the token or its key.
	ReasonDPoPProof = "dpop_proof"
	// ReasonDPoPReplay: the proof (its jti, for this key) was already used.
	ReasonDPoPReplay = "dpop_replay"
	// ReasonDPoPNonce: server nonces are required and the proof has no
	// current one (use_dpop_nonce).
	ReasonDPoPNonce = "dpop_nonce"
	// ReasonDPoPRequired: a DPoP-bound token presented as Bearer, or an
	// unbound token on a route (or token endpoint audience) with require_dpop.
	ReasonDPoPRequired = "dpop_required"
	// ReasonDPoPUnbound: the DPoP scheme with a token that is not DPoP-bound.
	ReasonDPoPUnbound = "dpop_unbound"
)

// headerDPoP is the proof header (canonical form), headerDPoPNonce the
// server nonce header.
const (
	headerDPoP      = "Dpop"
	headerDPoPNonce = "DPoP-Nonce"
)

// ReplayChecker records DPoP replay keys: Fresh reports whether key was not
// recorded before (by any replica sharing the store). An error means the
// store cannot answer and the request must fail closed (503).
// *cache.ReplayGuard implements it.
type ReplayChecker interface {
	Fresh(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// DPoPOptions are New's DPoP dependencies; zero values get per-gateway
// defaults (a memory replay store and a random nonce secret).
type DPoPOptions struct {
	// Replay is the replay store. nil: a memory store of
	// server.dpop.replay_max_entries, private to this gateway.
	Replay ReplayChecker
	// NonceSecret keys server nonces (at least 32 bytes); replicas that
	// share it accept each other's nonces. nil: random per gateway.
	NonceSecret []byte
}

// errDPoPReplayStore: the replay store failed and cache.redis.required.
var errDPoPReplayStore = errors.New("the DPoP replay store is unavailable")

// dpopState is the DPoP side of one gateway.
type dpopState struct {
	verifier *dpop.Verifier
	replay   ReplayChecker
	nonces   *dpop.Nonces // nil unless server.dpop.nonce
	algs     string       // the algs challenge parameter, quoted
	base     string       // server.public_url without its trailing "/", or ""
	proxies  trustedProxies
	// listenHost is server.listen's host when it is concrete
	// (config.Server.ListenAuthority), else ""; listenPort its port ("0":
	// the port the listener picked, read from the connection).
	listenHost, listenPort string
}

func newDPoP(s config.Server, proxies trustedProxies, opts DPoPOptions, clock func() time.Time) (*dpopState, error) {
	c := s.DPoP
	// A Config built in code (tests) may leave server.dpop empty: the
	// defaults apply, as Load would have set them.
	if c.MaxAge <= 0 {
		c.MaxAge = config.Duration(config.DefaultDPoPMaxAge)
	}
	if c.NonceLifetime <= 0 {
		c.NonceLifetime = config.Duration(config.DefaultDPoPNonceLifetime)
	}
	if c.ReplayMaxEntries <= 0 {
		c.ReplayMaxEntries = config.DefaultDPoPReplayMaxEntries
	}
	d := &dpopState{replay: opts.Replay, base: strings.TrimRight(s.PublicURL, "/"), proxies: proxies}
	d.listenHost, _, _ = s.ListenAuthority()
	if _, port, err := net.SplitHostPort(s.Listen); err == nil {
		d.listenPort = port
	}
	if c.Nonce {
		secret := opts.NonceSecret
		if secret == nil {
			secret = make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return nil, fmt.Errorf("server.dpop: nonce secret: %w", err)
			}
		}
		var err error
		if d.nonces, err = dpop.NewNonces(secret, c.NonceLifetime.D(), clock); err != nil {
			return nil, fmt.Errorf("server.dpop: %w", err)
		}
	}
	v, err := dpop.NewVerifier(dpop.Options{
		Algorithms: c.Algorithms, MaxAge: c.MaxAge.D(), Leeway: c.Leeway.D(), Nonces: d.nonces, Clock: clock,
	})
	if err != nil {
		return nil, fmt.Errorf("server.dpop: %w", err)
	}
	d.verifier = v
	d.algs = quote(strings.Join(v.Algorithms(), " "))
	if d.replay == nil {
		mem, err := cache.NewMemoryReplay(c.ReplayMaxEntries, clock)
		if err != nil {
			return nil, fmt.Errorf("server.dpop.replay_max_entries: %w", err)
		}
		if d.replay, err = cache.NewReplayGuard(cache.ReplayGuardOptions{Memory: mem, Clock: clock}); err != nil {
			return nil, fmt.Errorf("server.dpop: %w", err)
		}
	}
	return d, nil
}

// htu is the URL a DPoP proof for in must name (RFC 9449 section 4.3),
// with the path as received (before cleaning and strip_prefix) and no query.
// Its scheme and authority come from, in order: server.public_url; a
// trusted proxy's X-Forwarded-Proto and X-Forwarded-Host (right-most
// values); the listener's scheme with the matched route's host, or with
// server.listen's concrete host, and the listener's port. Never from the
// Host header: a proof made for another server could be replayed here by
// sending that server's Host. ok is false when no rule applies (a route
// without host, listen ":8080", no public_url, an untrusted peer) or a
// trusted proxy's values are unusable: the proof cannot be checked.
// listener is false for an authz decision: the client used the proxy in
// front, not tokengate's listener, so only the first two rules apply.
func (d *dpopState) htu(in *http.Request, routeHost string, listener bool) (htu string, ok bool) {
	path := in.URL.EscapedPath()
	if d.base != "" {
		return d.base + path, true
	}
	if d.proxies.peerOf(in).trusted {
		proto, host := lastValue(in.Header, "X-Forwarded-Proto"), lastValue(in.Header, "X-Forwarded-Host")
		if proto != "" && host != "" {
			origin, err := dpop.Origin(proto, host)
			if err != nil {
				return "", false
			}
			return origin + path, true
		}
	}
	if !listener {
		return "", false
	}
	host := routeHost
	if host == "" {
		host = d.listenHost
	}
	port := d.listenPort
	if port == "0" {
		port = localPort(in)
	}
	if host == "" || port == "" || port == "0" {
		return "", false
	}
	scheme := "http://"
	if in.TLS != nil {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + path, true
}

// localPort is the port of the listener that accepted in, "" when unknown.
func localPort(in *http.Request) string {
	a, ok := in.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return ""
	}
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return ""
	}
	return port
}

// descNoHTU is the refusal of a DPoP-bound token where no htu can be built.
const descNoHTU = "this gateway cannot check DPoP proofs for this request: the URL clients use is not configured " +
	"(server.public_url or server.trusted_proxies)"

// dpopError is a request refused for DPoP reasons: it carries its whole
// response (the challenge needs the configured algorithms).
type dpopError struct {
	resp response
	err  error // the underlying failure, for logs; nil when none
}

func (e *dpopError) Error() string {
	if e.err != nil {
		return "dpop: " + e.resp.description + ": " + e.err.Error()
	}
	return "dpop: " + e.resp.description
}
func (e *dpopError) Unwrap() error { return e.err }

// reject is a 401 with a DPoP challenge naming the error.
func (d *dpopState) reject(reason, code, desc string) error {
	return &dpopError{resp: response{
		status:      http.StatusUnauthorized,
		challenge:   "DPoP algs=" + d.algs + `, error="` + code + `", error_description=` + quote(desc),
		code:        code,
		description: desc,
		reason:      reason,
	}}
}

// useNonce is RFC 9449 section 8's 401 use_dpop_nonce with a fresh nonce.
func (d *dpopState) useNonce(desc string) error {
	return &dpopError{resp: response{
		status:      http.StatusUnauthorized,
		challenge:   `DPoP error="use_dpop_nonce", error_description=` + quote(desc),
		code:        "use_dpop_nonce",
		description: desc,
		reason:      ReasonDPoPNonce,
		dpopNonce:   d.nonces.Current(),
	}}
}

// errRequired refuses an unbound token where DPoP is required.
func (d *dpopState) errRequired() error {
	return d.reject(ReasonDPoPRequired, "invalid_token",
		"this API accepts only DPoP-bound access tokens (cnf.jkt): request one from the authorization server with a DPoP proof")
}

// requireBinding applies a route's require_dpop to a verified token.
func (g *Gateway) requireBinding(rt *route, tok *exchange.Token) error {
	if rt.policy.requireDPoP && tok.Claims.JKT == "" {
		return g.dpop.errRequired()
	}
	return nil
}

// checkBinding is the sender constraint of a verified token (RFC 9449):
// a bound token needs the DPoP scheme (at the edge) and exactly one valid
// proof for this request, checked for replay last; an unbound token must
// not be presented with the DPoP scheme. At the token endpoint the subject
// token travels in the body, so only the proof is checked (htm POST, htu
// the endpoint's URL).
func (g *Gateway) checkBinding(ctx context.Context, tok *exchange.Token, raw string, st *requestState) error {
	d := g.dpop
	jkt := tok.Claims.JKT
	if jkt == "" {
		if !st.endpoint && st.scheme == schemeDPoP {
			return d.reject(ReasonDPoPUnbound, "invalid_token",
				"the access token is not DPoP-bound: send it with Authorization: Bearer")
		}
		return nil
	}
	if !st.endpoint && st.scheme != schemeDPoP {
		return d.reject(ReasonDPoPRequired, "invalid_token",
			"the access token is DPoP-bound: send it with Authorization: DPoP and a DPoP proof")
	}
	in := st.in
	routeHost := ""
	if st.route != nil {
		routeHost = st.route.match.host
	}
	htu, ok := d.htu(in, routeHost, st.from == entryEdge)
	if !ok {
		return d.reject(ReasonDPoPProof, "invalid_dpop_proof", descNoHTU)
	}
	proof, err := d.verifier.Verify(dpop.Request{
		Proofs: in.Header[headerDPoP], Method: in.Method, URL: htu, AccessToken: raw, JKT: jkt,
	})
	if err != nil {
		var de *dpop.Error
		desc := "the DPoP proof is invalid"
		if errors.As(err, &de) {
			desc = de.Description
		}
		if errors.Is(err, dpop.ErrUseNonce) {
			return d.useNonce(desc)
		}
		return d.reject(ReasonDPoPProof, "invalid_dpop_proof", desc)
	}
	fresh, err := d.replay.Fresh(ctx, proof.ReplayKey, proof.ReplayTTL)
	if err != nil {
		return &dpopError{err: err, resp: response{
			status:      http.StatusServiceUnavailable,
			code:        "temporarily_unavailable",
			description: errDPoPReplayStore.Error() + "; retry later",
			retryAfter:  true,
		}}
	}
	if !fresh {
		return d.reject(ReasonDPoPReplay, "invalid_dpop_proof",
			"the DPoP proof was already used: make a new proof (a new jti) for every request")
	}
	if d.nonces != nil {
		// The window rolled since the client got its nonce: hand it the
		// next one now, so its next request needs no use_dpop_nonce round trip.
		if cur := d.nonces.Current(); proof.Nonce != cur {
			st.rw.Header().Set(headerDPoPNonce, cur)
		}
	}
	return nil
}

// dpopChallenge wraps an edge error so its challenge follows RFC 9449
// section 7.1: with the DPoP scheme or on a require_dpop route the
// challenge is DPoP's; otherwise a 401 keeps its Bearer challenge and adds
// a DPoP one.
type dpopChallenge struct {
	err  error
	algs string
	dpop bool
}

func (c *dpopChallenge) Error() string { return c.err.Error() }
func (c *dpopChallenge) Unwrap() error { return c.err }

// withDPoPChallenge wraps err for the route and the presented scheme. A
// Bearer request gets the extra DPoP challenge only where DPoP is accepted:
// where the gateway can build the URL a proof must name (htu). Elsewhere it
// would invite clients to a scheme every proof of which is refused.
func (g *Gateway) withDPoPChallenge(err error, st *requestState, scheme string) error {
	rt := st.route
	dp := scheme == schemeDPoP || rt.policy.requireDPoP
	if !dp {
		if _, ok := g.dpop.htu(st.in, rt.match.host, st.from == entryEdge); !ok {
			return err
		}
	}
	return &dpopChallenge{err: err, algs: g.dpop.algs, dpop: dp}
}

// adjust rewrites the challenge of r (see dpopChallenge).
func (c *dpopChallenge) adjust(r response) response {
	if (r.status != http.StatusUnauthorized && r.status != http.StatusForbidden) || strings.HasPrefix(r.challenge, "DPoP") {
		return r
	}
	dp := "DPoP algs=" + c.algs
	switch {
	case !c.dpop:
		if r.status == http.StatusUnauthorized {
			r.extraChallenge = dp
		}
	case r.challenge == challengeRealm:
		r.challenge = dp
	case strings.HasPrefix(r.challenge, "Bearer "):
		r.challenge = dp + ", " + strings.TrimPrefix(r.challenge, "Bearer ")
	}
	return r
}
