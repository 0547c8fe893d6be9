package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"

	"github.com/tokengate/tokengate/config"
)

// Forwarding headers and trusted proxies (SECURITY.md, "Forwarding headers
// and trusted proxies"). One decision, made from the TCP peer alone: is it
// one of server.trusted_proxies? Everything that depends on who the client
// is or which URL it used (the forwarded headers, the access log's
// client_ip, the DPoP htu) follows that decision and nothing else.

// headerClass is what the gateway does with a forwarding header.
type headerClass uint8

const (
	// classOther: not a forwarding header; passed on as any other.
	classOther headerClass = iota
	// classGatewaySet: X-Forwarded-For/-Proto/-Host, which the gateway
	// always sends: its own values for an untrusted peer; appended to (For)
	// or kept (Proto, Host) for a trusted one.
	classGatewaySet
	// classProxyOnly: forwarding and client-address headers only a trusted
	// proxy may set; removed from any other peer's request.
	classProxyOnly
	// classAlwaysRemoved: request rewrites and credentials no backend
	// should take from the client side; removed whoever sent them.
	classAlwaysRemoved
)

// classifyHeader returns the class of a header name in any spelling: case is
// folded and "_" is read as "-", since CGI-style backends (WSGI, PHP) map
// X_Forwarded_For and X-Forwarded-For to the same variable.
func classifyHeader(name string) headerClass {
	if strings.IndexByte(name, '_') >= 0 {
		name = strings.ReplaceAll(name, "_", "-")
	}
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host":
		return classGatewaySet
	case "Forwarded", "X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix",
		"X-Forwarded-Server", "X-Forwarded-Scheme", "X-Forwarded-Ssl",
		"True-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip",
		"Cf-Connecting-Ip", "Fastly-Client-Ip",
		// Beyond the contract's list: other spellings of the scheme and
		// the client's address that common frameworks read.
		"X-Forwarded-Protocol", "X-Url-Scheme", "Front-End-Https",
		"X-Originating-Ip", "X-Remote-Ip", "X-Remote-Addr", "Client-Ip":
		return classProxyOnly
	case "X-Original-Url", "X-Original-Uri", "X-Original-Method", "X-Rewrite-Url",
		"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-User",
		"Txn-Token", "Dpop":
		return classAlwaysRemoved
	}
	return classOther
}

// trustedProxies is server.trusted_proxies, parsed. The zero value trusts
// no peer.
type trustedProxies struct {
	prefixes []netip.Prefix
}

// newTrustedProxies parses server.trusted_proxies (validated by config;
// an entry that still fails to parse is an error, never skipped).
func newTrustedProxies(list []string) (trustedProxies, error) {
	t := trustedProxies{prefixes: make([]netip.Prefix, 0, len(list))}
	for i, s := range list {
		p, err := config.ParseTrustedProxy(s)
		if err != nil {
			return trustedProxies{}, fmt.Errorf("server.trusted_proxies[%d]: %w", i, err)
		}
		t.prefixes = append(t.prefixes, p)
	}
	return t, nil
}

// contains reports whether a is a trusted proxy.
func (t trustedProxies) contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer is the TCP peer of a request: its address (invalid when RemoteAddr
// is not ip:port, e.g. a unix socket) and whether it is trusted.
type peer struct {
	addr    netip.Addr
	trusted bool
}

// peerOf decides whether r's TCP peer is a trusted proxy.
func (t trustedProxies) peerOf(r *http.Request) peer {
	a := parseAddr(r.RemoteAddr)
	return peer{addr: a, trusted: t.contains(a)}
}

// parseAddr reads "ip", "ip:port" or "[ipv6]:port" (X-Forwarded-For
// entries carry a port behind some load balancers); invalid when it is
// none of them.
func parseAddr(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// clientIP is the client's address for logs: the peer itself unless it is
// a trusted proxy; then the right-most X-Forwarded-For entry that is not a
// trusted proxy (the left-most entry when all are). The walk stops at an
// entry that is not an address: what lies left of it cannot be attributed,
// so the last address known good is used. "" when the peer has no address.
func (t trustedProxies) clientIP(r *http.Request) string {
	p := t.peerOf(r)
	if !p.addr.IsValid() {
		return ""
	}
	client := p.addr
	if !p.trusted {
		return client.String()
	}
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		line := vals[i]
		for line != "" {
			var entry string
			if j := strings.LastIndexByte(line, ','); j >= 0 {
				line, entry = line[:j], line[j+1:]
			} else {
				line, entry = "", line
			}
			if strings.TrimSpace(entry) == "" {
				continue
			}
			a := parseAddr(entry)
			if !a.IsValid() {
				return client.String()
			}
			client = a
			if !t.contains(a) {
				return client.String()
			}
		}
	}
	return client.String()
}

// lastValue is the right-most comma-separated value of a header over all
// its lines, trimmed; "" when it has none. Behind proxies that append, the
// right-most value is the one the nearest (trusted) proxy wrote.
func lastValue(h http.Header, name string) string {
	vals := h.Values(name)
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		if j := strings.LastIndexByte(v, ','); j >= 0 {
			v = v[j+1:]
		}
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// rewriteForwarded sets the forwarding headers of an outbound request
// (out) from the inbound one (in), for the trust decision about in's peer.
// httputil.ReverseProxy has already removed Forwarded and
// X-Forwarded-For/-Proto/-Host (canonical spellings) from out.
//
//   - Always removed: classAlwaysRemoved, in any spelling.
//   - Untrusted peer: every classProxyOnly header removed;
//     X-Forwarded-For is the peer, X-Forwarded-Proto the listener's scheme,
//     X-Forwarded-Host the Host.
//   - Trusted peer: the peer is appended to X-Forwarded-For; the proxy's
//     Forwarded, X-Forwarded-Proto and -Host are kept (set by the gateway
//     when the proxy sent none); classProxyOnly headers pass.
//
// Any other spelling of a forwarding header (x-real-ip in a hand-built
// header map, X_Real_IP, which Go keeps apart but CGI-style backends read
// as X-Real-IP) is removed from every peer: a backend must never see two
// spellings of one header.
func (t trustedProxies) rewriteForwarded(in *http.Request, out http.Header) {
	p := t.peerOf(in)
	for name := range out {
		switch c := classifyHeader(name); {
		case c == classOther:
		case c == classAlwaysRemoved,
			c == classProxyOnly && !p.trusted,
			strings.IndexByte(name, '_') >= 0, name != textproto.CanonicalMIMEHeaderKey(name):
			delete(out, name)
		}
	}
	scheme := "http"
	if in.TLS != nil {
		scheme = "https"
	}
	xff := ""
	if p.trusted {
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			xff = strings.Join(prior, ", ")
		}
		if f := in.Header.Values("Forwarded"); len(f) > 0 {
			out["Forwarded"] = append([]string(nil), f...)
		}
		if v := in.Header.Values("X-Forwarded-Proto"); len(v) > 0 {
			out["X-Forwarded-Proto"] = append([]string(nil), v...)
		}
		if v := in.Header.Values("X-Forwarded-Host"); len(v) > 0 {
			out["X-Forwarded-Host"] = append([]string(nil), v...)
		}
	}
	if p.addr.IsValid() {
		if xff != "" {
			xff += ", "
		}
		out.Set("X-Forwarded-For", xff+p.addr.String())
	}
	if out.Get("X-Forwarded-Proto") == "" {
		out.Set("X-Forwarded-Proto", scheme)
	}
	if out.Get("X-Forwarded-Host") == "" {
		out.Set("X-Forwarded-Host", in.Host)
	}
}
