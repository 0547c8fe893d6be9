package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"html"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromiumBinary is Debian's chromium package (make chromium installs it).
const chromiumBinary = "/usr/bin/chromium"

// browserCall is one fetch the test page makes through the gateway.
type browserCall struct {
	Name      string `json:"name"`
	Path      string `json:"path"`
	Token     string `json:"token"`
	RequestID string `json:"rid"`
}

// browserResult is what the page could read of one response, as a
// cross-origin script sees it: only the exposed headers are readable.
type browserResult struct {
	Status    int    `json:"status"`
	Body      string `json:"body"`
	Challenge string `json:"www"`
	RequestID string `json:"rid"`
	Error     string `json:"error"` // set when fetch rejected (a CORS failure)
}

// browserPage calls the gateway with a non-simple request (Authorization and
// X-Request-Id), so the browser sends a real preflight first, and writes what
// the script could read into <pre id="result">, which the test reads back
// with --dump-dom.
var browserPage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>tokengate CORS test</title></head>
<body><pre id="result">pending</pre>
<script>
const gateway = {{.Gateway}};
const calls = {{.Calls}};
(async () => {
  const out = {};
  for (const c of calls) {
    try {
      const resp = await fetch(gateway + c.path, {
        headers: {Authorization: "Bearer " + c.token, "X-Request-Id": c.rid},
      });
      out[c.name] = {
        status: resp.status,
        body: await resp.text(),
        www: resp.headers.get("WWW-Authenticate") || "",
        rid: resp.headers.get("X-Request-Id") || "",
      };
    } catch (e) {
      out[c.name] = {error: String(e)};
    }
  }
  document.getElementById("result").textContent = JSON.stringify(out);
})();
</script></body></html>
`))

// newBrowserPageServer serves the page on its own origin.
func newBrowserPageServer(t *testing.T) (*httptest.Server, *pageData) {
	t.Helper()
	data := &pageData{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		data.mu.Lock()
		defer data.mu.Unlock()
		if err := browserPage.Execute(w, data); err != nil {
			t.Errorf("page: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, data
}

type pageData struct {
	mu      sync.Mutex
	Gateway string
	Calls   []browserCall
}

func (p *pageData) set(gateway string, calls []browserCall) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Gateway, p.Calls = gateway, calls
}

// requireChromium skips without chromium, unless TOKENGATE_E2E_BROWSER=require.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumBinary); err != nil {
		if os.Getenv("TOKENGATE_E2E_BROWSER") == "require" {
			t.Fatalf("chromium is required (TOKENGATE_E2E_BROWSER=require) but %s is missing: run make chromium", chromiumBinary)
		}
		t.Skipf("%s not installed (make chromium)", chromiumBinary)
	}
}

// runBrowser loads url in headless chromium (a fresh profile) and returns
// what the page's script wrote, by name of call.
func runBrowser(ctx context.Context, t *testing.T, url string) (map[string]browserResult, error) {
	cmd := exec.CommandContext(ctx, chromiumBinary,
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--disable-extensions", "--disable-background-networking",
		"--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=10000", "--dump-dom", url)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, &browserError{err: err, stderr: stderr.String()}
	}
	dom := stdout.String()
	const open, end = `<pre id="result">`, `</pre>`
	i := strings.Index(dom, open)
	if i < 0 {
		return nil, &browserError{err: errNoResult, stderr: dom + "\n" + stderr.String()}
	}
	rest := dom[i+len(open):]
	j := strings.Index(rest, end)
	if j < 0 {
		return nil, &browserError{err: errNoResult, stderr: dom}
	}
	text := html.UnescapeString(rest[:j])
	out := map[string]browserResult{}
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return nil, &browserError{err: err, stderr: "page result: " + text + "\n" + stderr.String()}
	}
	return out, nil
}

type browserError struct {
	err    error
	stderr string
}

func (e *browserError) Error() string { return e.err.Error() + "\n" + e.stderr }
func (e *browserError) Unwrap() error { return e.err }

// errNoResult: the dumped DOM lacks the page's result element.
var errNoResult = errors.New("no <pre id=\"result\"> in the dumped DOM")

// TestE2EBrowserCORS runs a single-page app in a real browser (headless
// chromium) on one origin calling tokengate on another: the browser's own
// preflight is answered by tokengate without a token and without reaching
// the backend; the actual request reaches the backend with the exchanged
// token; the app can read 401/403 statuses, the WWW-Authenticate challenge
// and X-Request-Id (exposed headers); a page on a disallowed origin cannot
// read anything (fetch rejects).
func TestE2EBrowserCORS(t *testing.T) {
	requireChromium(t)
	allowedPage, allowedData := newBrowserPageServer(t)
	otherPage, otherData := newBrowserPageServer(t)

	idp := newE2EIdP(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: func(text, _ string) string {
		// Step-up on inventory, and CORS for the allowed page's origin only.
		text = strings.Replace(text, "    scopes: [inventory:read]\n",
			"    scopes: [inventory:read]\n    acr_values: [mfa]\n", 1)
		return text + "cors:\n  allowed_origins: [" + allowedPage.URL + "]\n"
	}})

	claims := func(acr, scope string, exp time.Time) map[string]any {
		return map[string]any{
			"sub": "user-1", "client_id": "spa", "acr": acr,
			"aud": []string{audOrders, audInventory}, "scope": scope,
			"iat": exp.Add(-time.Hour).Unix(), "exp": exp.Unix(),
		}
	}
	inAnHour := time.Now().Add(time.Hour)
	umbrella := idp.mint(t, claims("mfa", "openid orders:read inventory:read", inAnHour))
	calls := []browserCall{
		{Name: "ok", Path: "/orders/1", Token: umbrella, RequestID: "browser-ok-1"},
		{Name: "expired", Path: "/orders/2", Token: idp.mint(t, claims("mfa", "orders:read", time.Now().Add(-time.Hour))), RequestID: "browser-expired-2"},
		{Name: "scope", Path: "/orders/3", Token: idp.mint(t, claims("mfa", "inventory:read", inAnHour)), RequestID: "browser-scope-3"},
		{Name: "stepup", Path: "/inventory/4", Token: idp.mint(t, claims("pwd", "inventory:read", inAnHour)), RequestID: "browser-stepup-4"},
	}
	allowedData.set(g.srv.EdgeURL(), calls)
	otherData.set(g.srv.EdgeURL(), calls[:1])

	// Both pages load at once: each chromium run takes a few seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var allowed, other map[string]browserResult
	var allowedErr, otherErr error
	wg.Add(2)
	go func() { defer wg.Done(); allowed, allowedErr = runBrowser(ctx, t, allowedPage.URL+"/") }()
	go func() { defer wg.Done(); other, otherErr = runBrowser(ctx, t, otherPage.URL+"/") }()
	wg.Wait()
	if allowedErr != nil {
		t.Fatalf("chromium (allowed origin): %v", allowedErr)
	}
	if otherErr != nil {
		t.Fatalf("chromium (other origin): %v", otherErr)
	}
	t.Logf("the allowed page read: %+v", allowed)
	t.Logf("the other page read: %+v", other)

	t.Run("allowed request reaches the backend with the exchanged token", func(t *testing.T) {
		r := allowed["ok"]
		if r.Error != "" || r.Status != http.StatusOK || !strings.Contains(r.Body, `"backend":"orders"`) {
			t.Fatalf("ok: the page read %+v, want 200 and the backend's body", r)
		}
		if r.RequestID != "browser-ok-1" {
			t.Errorf("the page read X-Request-Id %q, want browser-ok-1 (exposed)", r.RequestID)
		}
		reqs := orders.received()
		if len(reqs) != 1 {
			t.Fatalf("orders received %d requests, want 1 (the preflights stay at the gateway)", len(reqs))
		}
		got := reqs[0]
		if got.Method != http.MethodGet || got.URL.Path != "/orders/1" {
			t.Errorf("orders received %s %s, want GET /orders/1", got.Method, got.URL.Path)
		}
		tok := bearerOf(got)
		if tok == "" || tok == umbrella {
			t.Fatalf("orders received the umbrella token or none")
		}
		exchanged, _, err := newDemoBackend("orders", audOrders, g.issuer, &http.Client{Timeout: 5 * time.Second}).
			verify(context.Background(), "Bearer "+tok)
		if err != nil || exchanged["aud"] != audOrders {
			t.Errorf("the backend's token is not the exchanged orders token: %v %v", exchanged, err)
		}
		if rid := got.Header.Get("X-Request-Id"); rid != "browser-ok-1" {
			t.Errorf("orders received X-Request-Id %q, want browser-ok-1", rid)
		}
		if n := len(inventory.received()); n != 0 {
			t.Errorf("inventory received %d requests, want 0 (step-up refused)", n)
		}
	})

	t.Run("the app reads refusals and their challenges", func(t *testing.T) {
		cases := []struct {
			name, challenge string
			status          int
		}{
			{"expired", `error="invalid_token"`, http.StatusUnauthorized},
			{"scope", `error="insufficient_scope"`, http.StatusForbidden},
			{"stepup", `error="insufficient_user_authentication"`, http.StatusUnauthorized},
		}
		for _, tc := range cases {
			r := allowed[tc.name]
			if r.Error != "" || r.Status != tc.status {
				t.Errorf("%s: the page read %+v, want status %d", tc.name, r, tc.status)
				continue
			}
			if !strings.HasPrefix(r.Challenge, "Bearer ") || !strings.Contains(r.Challenge, tc.challenge) {
				t.Errorf("%s: the page read WWW-Authenticate %q, want %s", tc.name, r.Challenge, tc.challenge)
			}
			if !strings.Contains(r.Body, tc.challenge[len(`error="`):len(tc.challenge)-1]) {
				t.Errorf("%s: the page read body %q, want the error code", tc.name, r.Body)
			}
		}
		if c := allowed["stepup"].Challenge; !strings.Contains(c, `acr_values="mfa"`) {
			t.Errorf("step-up challenge %q lacks acr_values", c)
		}
	})

	t.Run("a disallowed origin cannot read the response", func(t *testing.T) {
		r := other["ok"]
		if r.Error == "" {
			t.Fatalf("fetch from %s resolved (%+v), want it rejected by CORS", otherPage.URL, r)
		}
	})

	t.Run("the preflights stay at the gateway", func(t *testing.T) {
		allowedPreflights := map[string]bool{}
		refused := 0
		for _, l := range accessLines(t, g) {
			if l["method"] != http.MethodOptions {
				continue
			}
			path, _ := l["path"].(string)
			switch l["status"] {
			case float64(http.StatusNoContent):
				allowedPreflights[path] = true
			case float64(http.StatusForbidden):
				refused++
			default:
				t.Errorf("preflight %s answered %v", path, l["status"])
			}
		}
		for _, c := range calls {
			if !allowedPreflights[c.Path] {
				t.Errorf("no preflight for %s answered 204 in the access log", c.Path)
			}
		}
		if refused == 0 {
			t.Errorf("the disallowed origin's preflight was not refused (403) by the gateway")
		}
		for _, b := range []*e2eBackend{orders, inventory} {
			for _, r := range b.received() {
				if r.Method == http.MethodOptions {
					t.Errorf("%s received a preflight", b.name)
				}
			}
		}
	})
	assertNoUmbrella(t, umbrella, g, orders, inventory)
}
