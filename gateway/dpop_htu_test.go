package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokengate/tokengate/config"
)

// TestDPoPHTU: the URL a proof must name comes from server.public_url, a
// trusted proxy's X-Forwarded-Proto/-Host, or the listener's scheme with
// the route's host or server.listen's concrete address; never from the
// Host header alone.
func TestDPoPHTU(t *testing.T) {
	tests := []struct {
		name      string
		server    config.Server
		routeHost string
		remote    string // default an untrusted peer
		host      string // the request's Host
		header    http.Header
		tls       bool
		local     string // the connection's local address, "" none
		want      string // "" = cannot be checked
	}{
		{name: "public_url wins over everything",
			server: config.Server{PublicURL: "https://api.example.com/", Listen: "127.0.0.1:8080", TrustedProxies: []string{"10.0.0.0/8"}},
			remote: "10.0.0.2:1", host: "other.example", header: http.Header{"X-Forwarded-Proto": {"http"}, "X-Forwarded-Host": {"x"}},
			want: "https://api.example.com/orders/1"},
		{name: "untrusted Host with listen :8080 and no route host: none",
			server: config.Server{Listen: ":8080"}, host: "other.example"},
		{name: "listen 0.0.0.0: none", server: config.Server{Listen: "0.0.0.0:8080"}, host: "other.example"},
		{name: "listen [::]: none", server: config.Server{Listen: "[::]:8080"}, host: "other.example"},
		{name: "concrete listen, Host ignored",
			server: config.Server{Listen: "127.0.0.1:8080"}, host: "other.example",
			want: "http://127.0.0.1:8080/orders/1"},
		{name: "concrete listen over TLS", server: config.Server{Listen: "gw.internal:8443"}, host: "other.example", tls: true,
			want: "https://gw.internal:8443/orders/1"},
		{name: "listen port 0: the connection's port",
			server: config.Server{Listen: "127.0.0.1:0"}, host: "other.example", local: "127.0.0.1:41234",
			want: "http://127.0.0.1:41234/orders/1"},
		{name: "listen port 0 and no local address: none", server: config.Server{Listen: "127.0.0.1:0"}, host: "x"},
		{name: "route host with the listener's port, Host's port ignored",
			server: config.Server{Listen: ":8443"}, routeHost: "api.example.com", host: "api.example.com:9999", tls: true,
			want: "https://api.example.com:8443/orders/1"},
		{name: "IPv6 route host", server: config.Server{Listen: ":80"}, routeHost: "::1", host: "[::1]",
			want: "http://[::1]:80/orders/1"},
		{name: "trusted proxy's X-Forwarded-Proto/-Host",
			server: config.Server{Listen: ":8080", TrustedProxies: []string{"10.0.0.0/8"}}, remote: "10.0.0.2:1", host: "gw:8080",
			header: http.Header{"X-Forwarded-Proto": {"HTTPS"}, "X-Forwarded-Host": {"API.example.com:443"}},
			want:   "https://api.example.com/orders/1"},
		{name: "trusted proxy: right-most values",
			server: config.Server{Listen: ":8080", TrustedProxies: []string{"10.0.0.0/8"}}, remote: "10.0.0.2:1",
			header: http.Header{"X-Forwarded-Proto": {"http, https"}, "X-Forwarded-Host": {"evil.example", "api.example.com"}},
			want:   "https://api.example.com/orders/1"},
		{name: "trusted proxy without X-Forwarded-Host: listen rules",
			server: config.Server{Listen: "127.0.0.1:8080", TrustedProxies: []string{"10.0.0.0/8"}}, remote: "10.0.0.2:1",
			host: "other.example", header: http.Header{"X-Forwarded-Proto": {"https"}},
			want: "http://127.0.0.1:8080/orders/1"},
		{name: "trusted proxy with an unusable host: none",
			server: config.Server{Listen: "127.0.0.1:8080", TrustedProxies: []string{"10.0.0.0/8"}}, remote: "10.0.0.2:1",
			header: http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"api.example.com/evil"}}},
		{name: "trusted proxy with a bad scheme: none",
			server: config.Server{Listen: "127.0.0.1:8080", TrustedProxies: []string{"10.0.0.0/8"}}, remote: "10.0.0.2:1",
			header: http.Header{"X-Forwarded-Proto": {"ftp"}, "X-Forwarded-Host": {"api.example.com"}}},
		{name: "untrusted peer's X-Forwarded-* ignored",
			server: config.Server{Listen: ":8080", TrustedProxies: []string{"10.0.0.0/8"}}, host: "other.example",
			header: http.Header{"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"other.example"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxies := mustProxies(t, tc.server.TrustedProxies...)
			d, err := newDPoP(tc.server, proxies, DPoPOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/orders/1?q=1", nil)
			r.Host = tc.host
			r.RemoteAddr = "203.0.113.9:4000"
			if tc.remote != "" {
				r.RemoteAddr = tc.remote
			}
			if tc.header != nil {
				r.Header = tc.header
			}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if tc.local != "" {
				addr, err := net.ResolveTCPAddr("tcp", tc.local)
				if err != nil {
					t.Fatal(err)
				}
				r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(addr)))
			}
			got, ok := d.htu(r, tc.routeHost, true)
			if ok != (tc.want != "") || got != tc.want {
				t.Errorf("htu = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

// TestDPoPProofForAnotherHost: a proof made for another server, sent here
// with that server's Host, is refused (through real HTTP); a gateway that
// cannot build an htu refuses DPoP-bound tokens with a clear error.
func TestDPoPProofForAnotherHost(t *testing.T) {
	key := newDPoPKey(t)
	send := func(env *testEnv, htu string) (*http.Response, errorBody) {
		resp, body := env.do(t, "GET", "/orders/1", func(r *http.Request) {
			r.Host = "other.example"
			r.Header.Set("Authorization", "DPoP "+tokBound)
			r.Header.Set("DPoP", key.proof(t, "GET", htu, tokBound, nil))
		})
		if resp.StatusCode == 200 {
			return resp, errorBody{}
		}
		return resp, decodeError(t, body)
	}

	env, be := dpopEnv(t, key, nil) // listen 127.0.0.1:0
	if resp, e := send(env, "http://other.example/orders/1"); resp.StatusCode != 401 || e.Error != "invalid_dpop_proof" {
		t.Errorf("proof for other.example with Host other.example: %d %+v, want 401 invalid_dpop_proof", resp.StatusCode, e)
	}
	if resp, _ := send(env, env.edge.URL+"/orders/1"); resp.StatusCode != 200 {
		t.Errorf("proof for the listener's address: %d, want 200", resp.StatusCode)
	}

	open, be2 := dpopEnv(t, key, func(o *Options) { o.Config.Server.Listen = ":0" })
	resp, e := send(open, "http://other.example/orders/1")
	if resp.StatusCode != 401 || e.Error != "invalid_dpop_proof" || e.Description != descNoHTU {
		t.Errorf("listen :0 without public_url: %d %+v, want 401 %q", resp.StatusCode, e, descNoHTU)
	}
	if n := len(be.requests()) + len(be2.requests()); n != 1 {
		t.Errorf("backends received %d requests, want only the one with a good proof", n)
	}
}
