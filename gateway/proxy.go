package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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

// schemeH2C is the upstream scheme of cleartext HTTP/2 with prior
// knowledge (gRPC servers): the request itself goes out as http://.
const schemeH2C = "h2c"

// parseUpstream parses a route's upstream: http://, https:// or h2c://
// (the same form as http://). An h2c URL is returned as http://, with h2c
// set.
func parseUpstream(raw string) (u *url.URL, h2c bool, err error) {
	u, err = url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, false, fmt.Errorf("%q is not an absolute http(s) or h2c URL", raw)
	}
	switch u.Scheme {
	case "http", "https":
		return u, false, nil
	case schemeH2C:
		u.Scheme = "http"
		return u, true, nil
	default:
		return nil, false, fmt.Errorf("%q is not an absolute http(s) or h2c URL", raw)
	}
}

// upstreamProtocols are the protocols spoken to an upstream: HTTP/1.1 to
// http://, cleartext HTTP/2 only to h2c:// (prior knowledge, no upgrade),
// and HTTP/2 negotiated by ALPN (else HTTP/1.1) to https://, custom TLS
// configuration or not.
func upstreamProtocols(u *url.URL, h2c bool) *http.Protocols {
	p := new(http.Protocols)
	switch {
	case h2c:
		p.SetUnencryptedHTTP2(true)
	case u.Scheme == "https":
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	return p
}

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

// routeProxy forwards a route's requests: gRPC calls through a proxy that
// flushes every write at once (messages of a stream must not wait in a
// buffer), everything else through one that lets ReverseProxy decide
// (streaming responses without a length are flushed at once anyway).
type routeProxy struct {
	plain, grpc *httputil.ReverseProxy
}

func (p *routeProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isGRPC(r) {
		p.grpc.ServeHTTP(w, r)
		return
	}
	p.plain.ServeHTTP(w, r)
}

// newProxy builds the reverse proxy of one route, over a transport that
// speaks the upstream's protocol (upstreamProtocols) with the route's TLS
// configuration (nil: the system roots, the upstream's host as the name).
func (g *Gateway) newProxy(rt *route) *routeProxy {
	rt.upstream.transport = newTransport(rt.upstream.timeout)
	rt.upstream.transport.Protocols = upstreamProtocols(rt.upstream.url, rt.upstream.h2c)
	if rt.upstream.tlsConfig != nil {
		rt.upstream.transport.TLSClientConfig = rt.upstream.tlsConfig
	}
	plain := g.newReverseProxy(rt)
	grpc := g.newReverseProxy(rt)
	grpc.FlushInterval = -1
	return &routeProxy{plain: plain, grpc: grpc}
}

func (g *Gateway) newReverseProxy(rt *route) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Transport:  g.upstreamTransport(rt),
		BufferPool: g.buffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			rt.upstream.rewrite(pr, g.proxies)
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
func (up *routeUpstream) rewrite(pr *httputil.ProxyRequest, proxies trustedProxies) {
	st := stateFrom(pr.In.Context())
	pr.Out.URL.Path, pr.Out.URL.RawPath = up.forwardPath(pr.In.URL)
	pr.Out.URL.RawQuery = stripAccessToken(pr.Out.URL.RawQuery)
	pr.SetURL(up.url)
	proxies.rewriteForwarded(pr.In, pr.Out.Header)
	if st != nil {
		st.upstreamHeaders(pr.Out.Header)
	} else {
		pr.Out.Header.Del("Authorization") // unreachable: fail closed all the same
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
	if rt.cors != nil {
		// The gateway's CORS policy is the only one: its headers are
		// already on the response (corsHeaders) or must not be there.
		dropUpstreamCORS(resp.Header)
	}
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
	st.upDur = g.clock().Sub(st.upStart)
	rt.obs.upstream.Observe(st.upDur.Seconds())
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
