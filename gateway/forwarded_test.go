package gateway

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

// proxyOnlyHeaders are the contract's forwarding and client-address headers
// that only a trusted proxy may set (canonical spellings).
var proxyOnlyHeaders = []string{
	"Forwarded", "X-Real-Ip", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server",
	"X-Forwarded-Scheme", "X-Forwarded-Ssl", "True-Client-Ip", "X-Client-Ip",
	"X-Cluster-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip",
}

// alwaysRemovedHeaders are removed whoever sent them.
var alwaysRemovedHeaders = []string{
	"X-Original-Url", "X-Original-Uri", "X-Original-Method", "X-Rewrite-Url",
	"X-Forwarded-Method", "X-Forwarded-Uri", "X-Forwarded-User", "Txn-Token", "Dpop",
}

func mustProxies(t *testing.T, list ...string) trustedProxies {
	t.Helper()
	p, err := newTrustedProxies(list)
	if err != nil {
		t.Fatalf("newTrustedProxies(%q): %v", list, err)
	}
	return p
}

func TestTrustedProxiesPeerAndClientIP(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		remote  string
		xff     []string // X-Forwarded-For lines
		peer    bool     // want the peer trusted
		client  string
	}{
		{name: "no trusted proxies: the peer, XFF ignored", remote: "203.0.113.9:4000",
			xff: []string{"198.51.100.1"}, client: "203.0.113.9"},
		{name: "untrusted peer: its own address", trusted: []string{"10.0.0.0/8"}, remote: "203.0.113.9:4000",
			xff: []string{"10.1.1.1"}, client: "203.0.113.9"},
		{name: "trusted peer: right-most untrusted XFF entry", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:4000",
			xff: []string{"198.51.100.7, 203.0.113.5"}, peer: true, client: "203.0.113.5"},
		{name: "trusted hops are skipped, across lines", trusted: []string{"10.0.0.0/8", "192.168.1.7"}, remote: "10.0.0.2:1",
			xff: []string{"6.6.6.6, 203.0.113.5", "192.168.1.7 , 10.9.9.9"}, peer: true, client: "203.0.113.5"},
		{name: "single IP entry is a /32", trusted: []string{"192.168.1.7"}, remote: "192.168.1.8:1",
			xff: []string{"203.0.113.5"}, client: "192.168.1.8"},
		{name: "every entry trusted: the left-most", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:1",
			xff: []string{"10.0.0.3, 10.0.0.4"}, peer: true, client: "10.0.0.3"},
		{name: "no XFF from a trusted peer: the peer", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:1",
			peer: true, client: "10.0.0.2"},
		{name: "entries with ports and brackets", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:1",
			xff: []string{"203.0.113.5:5555, [2001:db8::1]:443"}, peer: true, client: "2001:db8::1"},
		{name: "garbage stops the walk at the last good hop", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:1",
			xff: []string{"203.0.113.5, not-an-ip, 10.0.0.3"}, peer: true, client: "10.0.0.3"},
		{name: "IPv4-mapped peer matches an IPv4 CIDR", trusted: []string{"127.0.0.1/32"}, remote: "[::ffff:127.0.0.1]:1",
			xff: []string{"203.0.113.5"}, peer: true, client: "203.0.113.5"},
		{name: "IPv6 CIDR", trusted: []string{"fd00::/8"}, remote: "[fd00::2]:1",
			xff: []string{"2001:db8::9"}, peer: true, client: "2001:db8::9"},
		{name: "unparsable peer is never trusted", trusted: []string{"10.0.0.0/8"}, remote: "@unix",
			xff: []string{"203.0.113.5"}, client: ""},
		{name: "empty entries are skipped", trusted: []string{"10.0.0.0/8"}, remote: "10.0.0.2:1",
			xff: []string{"203.0.113.5,, ", ""}, peer: true, client: "203.0.113.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustProxies(t, tc.trusted...)
			r := httptest.NewRequest("GET", "/orders", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := p.peerOf(r).trusted; got != tc.peer {
				t.Errorf("peer trusted = %v, want %v", got, tc.peer)
			}
			if got := p.clientIP(r); got != tc.client {
				t.Errorf("clientIP = %q, want %q", got, tc.client)
			}
		})
	}
}

func TestNewTrustedProxiesRefusesBadEntries(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "10.0.0.1/8", "proxy.internal", "", "fe80::1%eth0"} {
		if _, err := newTrustedProxies([]string{bad}); err == nil {
			t.Errorf("newTrustedProxies(%q) accepted", bad)
		}
	}
}

// outbound runs rewriteForwarded as the proxy does: ReverseProxy has
// already removed the canonical Forwarded and X-Forwarded-For/-Proto/-Host.
func outbound(p trustedProxies, in *http.Request) http.Header {
	out := in.Header.Clone()
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		out.Del(h)
	}
	p.rewriteForwarded(in, out)
	return out
}

func TestRewriteForwarded(t *testing.T) {
	// every is every forwarding header a client might send, in canonical
	// spelling, with the value "client".
	every := func() http.Header {
		h := http.Header{}
		for _, n := range slices.Concat(proxyOnlyHeaders, alwaysRemovedHeaders) {
			h.Set(n, "client")
		}
		h.Set("X-Forwarded-For", "198.51.100.1")
		h.Set("X-Forwarded-Proto", "https")
		h.Set("X-Forwarded-Host", "evil.example")
		h.Set("Accept", "text/plain")
		return h
	}
	tests := []struct {
		name    string
		trusted []string
		header  http.Header
		tls     bool
		want    map[string][]string // exact values; nil value: absent
	}{
		{name: "untrusted: gateway's own XFF/Proto/Host, the rest removed", header: every(),
			want: map[string][]string{
				"X-Forwarded-For": {"203.0.113.9"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"api.example.com"},
				"Accept": {"text/plain"},
			}},
		{name: "untrusted over TLS: proto https", header: http.Header{}, tls: true,
			want: map[string][]string{"X-Forwarded-Proto": {"https"}}},
		{name: "trusted: XFF appended, proxy headers kept, rewrites still removed",
			trusted: []string{"203.0.113.0/24"}, header: every(),
			want: map[string][]string{
				"X-Forwarded-For": {"198.51.100.1, 203.0.113.9"}, "X-Forwarded-Proto": {"https"},
				"X-Forwarded-Host": {"evil.example"}, "Forwarded": {"client"}, "X-Real-Ip": {"client"},
				"True-Client-Ip": {"client"}, "X-Forwarded-Port": {"client"}, "Accept": {"text/plain"},
			}},
		{name: "trusted: several XFF and Forwarded lines", trusted: []string{"203.0.113.9"},
			header: http.Header{"X-Forwarded-For": {"198.51.100.1", "10.0.0.1, 10.0.0.2"}, "Forwarded": {"for=a", "for=b"}},
			want: map[string][]string{
				"X-Forwarded-For": {"198.51.100.1, 10.0.0.1, 10.0.0.2, 203.0.113.9"}, "Forwarded": {"for=a", "for=b"},
				"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"api.example.com"},
			}},
		{name: "non-canonical spellings never pass", trusted: []string{"203.0.113.9"},
			header: http.Header{"x_real_ip": {"1.2.3.4"}, "X_Forwarded_For": {"1.2.3.4"}, "x-original-url": {"/admin"},
				"dpop": {"proof"}, "X_Forwarded_Host": {"evil"}, "X_real_ip": {"1.2.3.4"}, "X_forwarded_for": {"1.2.3.4"}},
			want: map[string][]string{"x_real_ip": nil, "X_Forwarded_For": nil, "x-original-url": nil, "dpop": nil,
				"X_Forwarded_Host": nil, "X_real_ip": nil, "X_forwarded_for": nil, "X-Forwarded-For": {"203.0.113.9"}},
		},
		{name: "untrusted: underscore spellings removed", header: http.Header{"True_Client_IP": {"1.2.3.4"}, "CF_Connecting_IP": {"1.2.3.4"}},
			want: map[string][]string{"True_Client_IP": nil, "CF_Connecting_IP": nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://api.example.com/orders", nil)
			r.RemoteAddr = "203.0.113.9:4000"
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			r.Header = tc.header
			out := outbound(mustProxies(t, tc.trusted...), r)
			for name, want := range tc.want {
				if got := out[name]; !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if len(tc.trusted) == 0 {
				for _, n := range proxyOnlyHeaders {
					if v, ok := out[n]; ok {
						t.Errorf("untrusted peer: %s = %q reached the backend", n, v)
					}
				}
			}
			for _, n := range alwaysRemovedHeaders {
				if v, ok := out[n]; ok {
					t.Errorf("%s = %q reached the backend", n, v)
				}
			}
		})
	}
}
