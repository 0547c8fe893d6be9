package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzForwardAuthOriginal: whatever original-request headers a forward-auth
// call carries, the request decided is one every present source agrees
// with (the method exactly, the host regardless of case, the target as
// written), or the call is refused; under authz.path_prefix the call's own
// method and path count as sources. It never panics.
func FuzzForwardAuthOriginal(f *testing.F) {
	f.Add("GET", "/", "", "", "", "", "", "")
	f.Add("GET", "/", "GET", "api.test", "/orders/1", "", "", "")
	f.Add("GET", "/", "", "", "", "GET", "https://api.test/orders/1?a=b", "")
	f.Add("GET", "/", "", "", "/orders/1", "", "", "/secure/1")
	f.Add("DELETE", "/ext-authz/secure/1", "GET", "", "/orders/1", "", "", "")
	f.Add("GET", "/", "", "API.test", "", "", "http://api.test/x", "/x")
	g := &Gateway{authzPrefix: "/ext-authz"}
	f.Fuzz(func(t *testing.T, ownMethod, ownTarget, fwdMethod, fwdHost, fwdURI, origMethod, origURL, origURI string) {
		if ownMethod == "" || strings.ContainsAny(ownMethod, " \t\r\n") {
			return // net/http never hands the handler such a method
		}
		r := httptest.NewRequest(http.MethodGet, "http://authz.test/", nil)
		r.Method, r.RequestURI = ownMethod, ownTarget
		for name, v := range map[string]string{
			headerFwdMethod: fwdMethod, headerFwdHost: fwdHost, headerFwdURI: fwdURI,
			headerOrigMethod: origMethod, headerOrigURL: origURL, headerOrigURI: origURI,
		} {
			if v != "" {
				r.Header.Set(name, v)
			}
		}
		in, err := g.forwardAuthOriginal(r)
		if err != nil {
			return
		}
		own, envoy := g.prefixedTarget(ownTarget)
		methods := []string{fwdMethod, origMethod}
		targets := []string{fwdURI, originTargetOf(origURL), origURI}
		if envoy {
			methods = append(methods, ownMethod)
			targets = append(targets, own)
		}
		for _, m := range methods {
			if m != "" && m != in.Method {
				t.Fatalf("decided method %q, a source says %q", in.Method, m)
			}
		}
		for _, tg := range targets {
			if tg != "" && tg != in.RequestURI {
				t.Fatalf("decided target %q, a source says %q", in.RequestURI, tg)
			}
		}
		hosts := []string{fwdHost}
		if u, err := url.Parse(origURL); origURL != "" && err == nil {
			hosts = append(hosts, u.Host)
		}
		for _, h := range hosts {
			if h != "" && !strings.EqualFold(h, in.Host) {
				t.Fatalf("decided host %q, a source says %q", in.Host, h)
			}
		}
	})
}
