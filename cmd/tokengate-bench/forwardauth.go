package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// forward-auth scenarios (docs/ingress.md): an ingress asks tokengate's
// authz.listen for a decision and proxies itself. A decision on a cache hit
// has no upstream leg, so it must be cheaper than a full proxied request
// through the bare reverse proxy; and it verifies, decides and hands out
// the exchanged token for less than oauth2-proxy spends validating the
// same JWT on /oauth2/auth.

// authzSide is tokengate's forward-auth listener under load; its CPU is the
// tokengate process's, as for the edge.
func (e *env) authzSide() side {
	return side{"tokengate-authz", e.tg, newClient(e.tg.authzURL, e.o.conns)}
}

// runForwardAuth compares decisions (cache hit, the same token and route as
// the hit scenario, Envoy-style: the path is the original request's) with
// full proxied requests through the bare reverse proxy.
func runForwardAuth(e *env, w io.Writer) error {
	load := constant(routePath(0)+"/x", e.token)
	_, err := e.compareSides(w, "forwardauth", e.bareSide(), e.authzSide(), load, func() (workload, error) { return load, nil }, nil)
	return err
}

// runOAuth2Proxy compares the same decisions with oauth2-proxy's
// /oauth2/auth validating the same JWT (--skip-jwt-bearer-tokens, the bench
// IdP as its OIDC issuer). It runs only with -oauth2-proxy naming a binary
// that exists (make loadtest never builds oauth2-proxy).
func runOAuth2Proxy(e *env, w io.Writer) error {
	if e.o.oauth2Proxy == "" {
		fmt.Fprintln(w, "oauth2proxy: skipped (no -oauth2-proxy binary given)")
		return nil
	}
	if _, err := os.Stat(e.o.oauth2Proxy); err != nil {
		fmt.Fprintf(w, "oauth2proxy: skipped (%v)\n", err)
		return nil
	}
	o2p, err := startOAuth2Proxy(e.o.oauth2Proxy, e.idp, e.dir)
	if err != nil {
		return err
	}
	e.closers = append(e.closers, o2p.close)
	ref := side{"oauth2-proxy", o2p, newClient(o2p.url, e.o.conns)}
	ref.c.success = http.StatusAccepted // /oauth2/auth: 202 when authenticated
	refLoad := constant("/oauth2/auth", e.token)
	load := constant(routePath(0)+"/x", e.token)
	if _, err = e.compareSides(w, "oauth2proxy", ref, e.authzSide(), refLoad, func() (workload, error) { return load, nil }, nil); err != nil {
		out, _ := os.ReadFile(filepath.Join(e.dir, "oauth2-proxy.log"))
		return fmt.Errorf("%w\noauth2-proxy's log:\n%s", err, tail(out, 4000))
	}
	return nil
}

// startOAuth2Proxy runs oauth2-proxy as an auth-only service for the bench
// IdP: bearer JWTs are verified against the IdP's JWKS (no discovery, the
// dev IdP serves only its key set), the audience must hold the client id
// (audience 0, as tokengate's route r0 requires), and the subject stands
// in for the e-mail address the bench tokens do not carry. Its logs go to
// a file, as tokengate's do.
func startOAuth2Proxy(binary string, idp *devIdP, dir string) (*target, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	cmd := exec.Command(binary,
		"--http-address="+addr,
		"--provider=oidc",
		"--oidc-issuer-url="+idp.url,
		"--skip-oidc-discovery",
		"--oidc-jwks-url="+idp.jwksURI(),
		"--login-url="+idp.url+"/authorize",
		"--redeem-url="+idp.url+"/token",
		"--client-id="+audience(0),
		"--client-secret=bench",
		"--cookie-secret="+base64.RawURLEncoding.EncodeToString(secret),
		"--email-domain=*",
		"--oidc-email-claim=sub",
		"--insecure-oidc-allow-unverified-email",
		"--oidc-enabled-signing-alg=ES256",
		"--skip-jwt-bearer-tokens",
		"--upstream=static://200",
		"--redirect-url=http://"+addr+"/oauth2/callback",
	)
	logs, err := os.Create(filepath.Join(dir, "oauth2-proxy.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		logs.Close()
		return nil, fmt.Errorf("start oauth2-proxy: %w", err)
	}
	t := &target{name: "oauth2-proxy", url: "http://" + addr, cmd: cmd, stop: func() { logs.Close() }}
	if err := waitOK(t.url + "/ping"); err != nil {
		t.close()
		out, _ := os.ReadFile(filepath.Join(dir, "oauth2-proxy.log"))
		return nil, fmt.Errorf("oauth2-proxy not ready: %w\n%s", err, tail(out, 4000))
	}
	return t, nil
}

// waitOK polls url until it answers 200, for up to 30 seconds.
func waitOK(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
