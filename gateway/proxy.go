package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"
)

// Upstream transport tuning: a gateway keeps many warm connections to few
// hosts.
const (
	upstreamMaxIdleConns        = 1024
	upstreamMaxIdleConnsPerHost = 512
	upstreamIdleConnTimeout     = 90 * time.Second
	upstreamDialTimeout         = 5 * time.Second
	upstreamKeepAlive           = 30 * time.Second
	upstreamTLSHandshakeTimeout = 10 * time.Second
	// invalidateTimeout bounds dropping a cache entry after an upstream 401;
	// it runs detached from the client's context so a hang-up cannot skip it.
	invalidateTimeout = 2 * time.Second
)

// newTransport is the tuned transport of one upstream. ResponseHeaderTimeout
// is the route's timeout; streaming bodies and upgraded connections are not
// bounded by it.
func newTransport(timeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: upstreamDialTimeout, KeepAlive: upstreamKeepAlive}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          upstreamMaxIdleConns,
		MaxIdleConnsPerHost:   upstreamMaxIdleConnsPerHost,
		IdleConnTimeout:       upstreamIdleConnTimeout,
		TLSHandshakeTimeout:   upstreamTLSHandshakeTimeout,
		ExpectContinueTimeout: 1 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
}

// newProxy builds the reverse proxy of one route.
func (g *Gateway) newProxy(rt *route) *httputil.ReverseProxy {
	rt.transport = newTransport(rt.timeout)
	return &httputil.ReverseProxy{
		Transport:  g.upstreamTransport(rt),
		BufferPool: g.buffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			rt.rewrite(pr, g.proxies)
		},
		ModifyResponse: func(resp *http.Response) error {
			g.upstreamResponse(rt, resp)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.upstreamFailed(rt, w, r, err)
		},
	}
}

// rewrite builds the outbound request. ReverseProxy has already dropped the
// client's hop-by-hop, Forwarded and X-Forwarded-* headers; rewriteForwarded
// (forwarded.go) sets the forwarding headers for the peer's trust and
// removes the client's DPoP proof, Txn-Token and request-rewrite headers.
func (rt *route) rewrite(pr *httputil.ProxyRequest, proxies trustedProxies) {
	st := stateFrom(pr.In.Context())
	pr.Out.URL.Path, pr.Out.URL.RawPath = rt.forwardPath(pr.In.URL)
	pr.Out.URL.RawQuery = stripAccessToken(pr.Out.URL.RawQuery)
	pr.SetURL(rt.upstream)
	proxies.rewriteForwarded(pr.In, pr.Out.Header)
	h := pr.Out.Header
	if st != nil {
		// Replace the umbrella token: only the exchanged one leaves (none on
		// forward: txn_token routes).
		if st.exchanged != "" {
			h.Set("Authorization", "Bearer "+st.exchanged)
		} else {
			h.Del("Authorization")
		}
		if st.txnToken != "" {
			h.Set(headerTxnToken, st.txnToken)
		}
		h.Set(headerRequestID, st.requestID)
	} else {
		h.Del("Authorization") // unreachable: fail closed all the same
	}
}

// upstreamResponse runs when the upstream's response headers arrive.
func (g *Gateway) upstreamResponse(rt *route, resp *http.Response) {
	st := stateFrom(resp.Request.Context())
	if st == nil {
		return
	}
	g.observeUpstream(rt, st)
	// The gateway's request id is already on the response; do not duplicate it.
	resp.Header.Del(headerRequestID)
	// A Txn-Token never leaves the trust domain, even if a service echoes it.
	resp.Header.Del(headerTxnToken)
	if resp.StatusCode == http.StatusUnauthorized && st.exchanged != "" {
		// The upstream refused the exchanged token (revoked, key rotated):
		// drop it so the next request exchanges anew.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(resp.Request.Context()), invalidateTimeout)
		g.exchanger.Invalidate(ctx, st.exReq)
		cancel()
	}
}

// upstreamFailed maps a failed round trip to 502 / 504 (or nothing, when the
// client is gone), unless reading the client's body failed: then 400.
func (g *Gateway) upstreamFailed(rt *route, w http.ResponseWriter, r *http.Request, err error) {
	st := stateFrom(r.Context())
	if st == nil { // unreachable: the gateway always passes its state
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	g.observeUpstream(rt, st)
	if bodyErr := st.body.readErr(); bodyErr != nil {
		// The client's body broke (bad chunked encoding, a reset): the
		// transport aborted the upstream request, and the fault is the
		// client's, not the upstream's.
		g.fail(&st.rw, r, st, malformedBody(bodyErr))
		return
	}
	g.fail(&st.rw, r, st, newUpstreamError(err))
}

func (g *Gateway) observeUpstream(rt *route, st *requestState) {
	if st.upDone {
		return
	}
	st.upDone = true
	rt.obs.upstream.Observe(g.clock().Sub(st.upStart).Seconds())
}

// stripAccessToken removes every access_token parameter from a raw query: a
// token in the URL is never accepted and never forwarded (RFC 6750 section
// 2.3 is not supported). Keys are compared after unescaping, so
// "access%5Ftoken" goes too; the rest of the query keeps its order and
// encoding.
func stripAccessToken(q string) string {
	if q == "" || (!strings.Contains(q, "access") && !strings.Contains(q, "%")) {
		return q
	}
	var b strings.Builder
	rest := q
	for rest != "" {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		key, _, _ := strings.Cut(pair, "=")
		if isAccessTokenKey(key) {
			continue // drop it (an undecodable key cannot be checked)
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	return b.String()
}

// bufferPool recycles the 32 KiB copy buffers of a gateway's proxies.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32*1024)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
