package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// The backend matrix: tokens that tokengate signs (one gateway per
// algorithm) are verified by the JWT libraries backends use, each finding
// the keys from the issuer URL alone (discovery document -> jwks_uri):
// Node jose, Python PyJWT and authlib (Debian's python3-jwt and
// python3-authlib, run with /usr/bin/python3), Go go-oidc. Each must accept
// the token for its audience (checking iss, aud, exp and typ at+jwt, RFC
// 9068) and refuse the token for another audience; the Txn-Token likewise
// (typ txntoken+jwt, aud the trust domain) with jose and PyJWT. Strict
// discovery clients (openid-client, oauth4webapi, authlib's metadata
// validation) must accept the discovery documents.

// debianPython is the interpreter with Debian's python3-jwt and
// python3-authlib; the python3 on PATH may be a pyenv shim without them.
const debianPython = "/usr/bin/python3"

// requirePython returns debianPython, or fails (TOKENGATE_E2E_PYTHON=require,
// as make test sets) or skips the test with what to install.
func requirePython(t *testing.T) string {
	t.Helper()
	err := exec.Command(debianPython, "-c", "import jwt, authlib.jose, cryptography").Run()
	if err == nil {
		return debianPython
	}
	msg := fmt.Sprintf("%s cannot import jwt and authlib (%v): install python3-jwt and python3-authlib (make python-deps)", debianPython, err)
	if os.Getenv("TOKENGATE_E2E_PYTHON") == "require" {
		t.Fatalf("interop test cannot run: %s", msg)
	}
	t.Skipf("interop test skipped: %s", msg)
	return ""
}

// matrixCase is one line to a verifier; matrixResult its answer.
type matrixCase map[string]any

type matrixResult struct {
	OK        bool           `json:"ok"`
	Error     string         `json:"error"`
	Claims    map[string]any `json:"claims"`
	OIDCError string         `json:"oidc_error"`
	Metadata  map[string]any `json:"metadata"`
}

// runVerifier runs one verifier process over every case (one JSON line
// each, on stdin) and returns its answers in order.
func runVerifier(t *testing.T, dir string, env []string, cases []matrixCase, name string, args ...string) []matrixResult {
	t.Helper()
	var in bytes.Buffer
	for _, c := range cases {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(append(b, '\n'))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Stdin = dir, &in
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
	var results []matrixResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r matrixResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s printed %q: %v", name, sc.Text(), err)
		}
		results = append(results, r)
	}
	if len(results) != len(cases) {
		t.Fatalf("%s answered %d of %d cases\n%s", name, len(results), len(cases), stderr.String())
	}
	return results
}

// matrixTokens are what one gateway issued for the matrix.
type matrixTokens struct {
	alg, issuer            string
	orders, inventory, txn string
	ordersBE               *e2eBackend
}

// startMatrixGateway starts a local-mode gateway signing with a new alg key,
// with a Txn-Token on the orders route, and collects an exchanged token for
// each audience and a Txn-Token from what the backends received.
func startMatrixGateway(t *testing.T, idp *e2eIdP, alg, umbrella string) matrixTokens {
	t.Helper()
	dir := t.TempDir()
	oauthtest.WriteKey(t, filepath.Join(dir, "key.pem"), alg)
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss := "http://" + adminLn.Addr().String()
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	// public_url: the token endpoint's URL cannot be derived from port 0,
	// and RFC 8414 requires token_endpoint (authlib checks it).
	text := fmt.Sprintf(`server:
  listen: "127.0.0.1:0"
  admin_listen: "127.0.0.1:0"
  public_url: "https://gateway.example.com"
issuers:
  - issuer: %q
    jwks_uri: %q
    algorithms: [ES256]
exchange:
  local:
    issuer: %q
    signing_keys: [{file: key.pem, alg: %s}]
txn_token:
  trust_domain: %s
  workload_id: apigw.trust-domain.example
  ttl: 45s
routes:
  - name: orders
    path_prefix: /orders
    upstream: %q
    audience: %q
    scopes: [orders:read]
    forward: both
  - name: inventory
    path_prefix: /inventory
    upstream: %q
    audience: %q
    scopes: [inventory:read]
`, idp.URL(), idp.URL()+"/jwks.json", iss, alg, txnTrustDomain, orders.srv.URL, audOrders, inventory.srv.URL, audInventory)
	gw := startIOGateway(t, dir, text, adminLn)
	for _, p := range []string{"/orders/1", "/inventory/1"} {
		if status, _, body := edgeGet(t, gw.srv.EdgeURL(), p, umbrella); status != http.StatusOK {
			t.Fatalf("%s: GET %s = %d %s", alg, p, status, body)
		}
	}
	or, ir := orders.received(), inventory.received()
	return matrixTokens{
		alg: alg, issuer: iss, ordersBE: orders,
		orders: bearerOf(or[0]), inventory: bearerOf(ir[0]), txn: or[0].Header.Get("Txn-Token"),
	}
}

// goVerify verifies tok with coreos/go-oidc from the issuer URL (discovery,
// jwks_uri, the algorithms the metadata lists), plus the typ header.
func goVerify(ctx context.Context, issuer, audience, typ, tok string) error {
	provider, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return err
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: audience}).Verify(ctx, tok); err != nil {
		return err
	}
	hb, err := base64.RawURLEncoding.DecodeString(strings.SplitN(tok, ".", 2)[0])
	if err != nil {
		return err
	}
	var h struct{ Typ string }
	if err := json.Unmarshal(hb, &h); err != nil || h.Typ != typ {
		return fmt.Errorf("typ %q, want %q (%v)", h.Typ, typ, err)
	}
	return nil
}

// TestInteropBackendMatrix: see the top of this file.
func TestInteropBackendMatrix(t *testing.T) {
	node := requireNode(t)
	python := requirePython(t)
	idp := newE2EIdP(t)
	umbrella := idp.mint(t, map[string]any{"sub": "user-1", "client_id": "spa",
		"aud": []string{audOrders, audInventory}, "scope": "orders:read inventory:read"})

	algs := []string{"ES256", "RS256", "PS256", "EdDSA"}
	var gws []matrixTokens
	for _, alg := range algs {
		gws = append(gws, startMatrixGateway(t, idp, alg, umbrella))
	}

	// One case list per verifier; want[i] says whether case i must pass.
	type expect struct {
		what string
		ok   bool
	}
	var nodeCases, pyCases []matrixCase
	var nodeWant, pyWant []expect
	addVerify := func(g matrixTokens, typ, aud, tok string, ok bool, what string) {
		c := matrixCase{"op": "verify", "issuer": g.issuer, "audience": aud, "token": tok, "alg": g.alg, "typ": typ}
		nodeCases, nodeWant = append(nodeCases, c), append(nodeWant, expect{g.alg + " jose " + what, ok})
		lib := []string{"pyjwt", "authlib"}
		if typ == "txntoken+jwt" {
			lib = lib[:1] // the Txn-Token: jose and PyJWT
		}
		for _, l := range lib {
			pc := matrixCase{"lib": l}
			for k, v := range c {
				pc[k] = v
			}
			pyCases, pyWant = append(pyCases, pc), append(pyWant, expect{g.alg + " " + l + " " + what, ok})
		}
	}
	for _, g := range gws {
		addVerify(g, "at+jwt", audOrders, g.orders, true, "accepts the token for its audience")
		addVerify(g, "at+jwt", audOrders, g.inventory, false, "refuses a token for another audience")
		addVerify(g, "txntoken+jwt", txnTrustDomain, g.txn, true, "accepts the Txn-Token for the trust domain")
		addVerify(g, "txntoken+jwt", "other-domain.example", g.txn, false, "refuses a Txn-Token for another trust domain")
		addVerify(g, "at+jwt", audOrders, g.txn, false, "refuses a Txn-Token as an access token")
		nodeCases = append(nodeCases, matrixCase{"op": "discover", "issuer": g.issuer})
		nodeWant = append(nodeWant, expect{g.alg + " openid-client and oauth4webapi discovery", true})
		pyCases = append(pyCases, matrixCase{"op": "discover", "issuer": g.issuer})
		pyWant = append(pyWant, expect{g.alg + " authlib metadata validation", true})
	}

	nodeRes := runVerifier(t, e2eNodeDir, nil, nodeCases, node, "verify-matrix.mjs")
	pyRes := runVerifier(t, filepath.Join(e2eNodeDir, "python"), []string{"AUTHLIB_INSECURE_TRANSPORT=1"}, pyCases, python, "verify.py")
	check := func(results []matrixResult, want []expect) {
		for i, r := range results {
			if r.OK != want[i].ok {
				t.Errorf("%s: ok=%v (%s), want ok=%v", want[i].what, r.OK, r.Error, want[i].ok)
			}
		}
	}
	check(nodeRes, nodeWant)
	check(pyRes, pyWant)
	for i, r := range pyRes {
		if pyCases[i]["op"] != "discover" {
			continue
		}
		// OpenID Discovery wants RS256 listed for ID tokens, which
		// tokengate does not issue: only a gateway with an RS256 key lists it.
		rs256 := strings.HasPrefix(pyWant[i].what, "RS256")
		if rs256 && r.OIDCError != "" {
			t.Errorf("%s: OpenID Discovery validation: %s", pyWant[i].what, r.OIDCError)
		}
		if !rs256 && r.OIDCError != "" && !strings.Contains(r.OIDCError, "RS256") {
			t.Errorf("%s: OpenID Discovery validation failed for another reason than RS256: %s", pyWant[i].what, r.OIDCError)
		}
	}

	ctx := context.Background()
	for _, g := range gws {
		if err := goVerify(ctx, g.issuer, audOrders, "at+jwt", g.orders); err != nil {
			t.Errorf("%s go-oidc refuses the token for its audience: %v", g.alg, err)
		}
		if err := goVerify(ctx, g.issuer, audOrders, "at+jwt", g.inventory); err == nil {
			t.Errorf("%s go-oidc accepts a token for another audience", g.alg)
		}
		// The claims every verifier saw are RFC 9068's.
		if c := ioUnverifiedClaims(t, g.orders); c["iss"] != g.issuer || c["aud"] != audOrders || c["sub"] != "user-1" || c["client_id"] != "spa" {
			t.Errorf("%s token claims %v", g.alg, c)
		}
	}
}
