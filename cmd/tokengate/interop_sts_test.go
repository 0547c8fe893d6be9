package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/internal/oauthtest"
)

// ioScriptedSTS is oauthtest's STS whose answer the test sets per step; it
// records every form it receives.
type ioScriptedSTS struct{ *oauthtest.STS }

func newIOScriptedSTS(t *testing.T) *ioScriptedSTS {
	t.Helper()
	return &ioScriptedSTS{oauthtest.NewSTS(t, oauthtest.Answer(http.StatusServiceUnavailable, map[string]string{"error": "not_scripted"}))}
}

func (s *ioScriptedSTS) set(answer func(form url.Values) (int, any)) {
	s.SetHandler(func(w http.ResponseWriter, r *http.Request, _ int) {
		status, body := answer(r.PostForm)
		oauthtest.JSON(w, status, body)
	})
}

func (s *ioScriptedSTS) lastForm() url.Values {
	calls := s.Calls()
	return calls[len(calls)-1].Form
}

// ioIssuedJWT is a JWT-shaped token as an STS would issue it (unsigned:
// tokengate does not verify what the STS issues; the backend does).
func ioIssuedJWT(aud any, exp time.Time) string {
	b, _ := json.Marshal(map[string]any{"iss": "https://sts.example.com", "sub": "u", "aud": aud, "exp": exp.Unix()})
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"at+jwt","kid":"k1"}`)) + "." + enc(b) + ".c2lnbmF0dXJlLWJ5dGVz"
}

func ioTokenResponse(tok string) (int, any) {
	return 200, map[string]any{"access_token": tok, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
		"token_type": "Bearer", "expires_in": 120}
}

type ioReady struct {
	Status   string            `json:"status"`
	Degraded map[string]string `json:"degraded"`
}

func ioReadyz(t *testing.T, g *e2eGateway) (int, ioReady) {
	t.Helper()
	resp, body := get(t, g.srv.AdminURL()+"/readyz")
	var r ioReady
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return resp.StatusCode, r
}

// TestE2ERemoteSTSInterop runs the real gateway against a scripted STS:
// extra_params reach the STS, an issued JWT for another audience is never
// forwarded (503, invalid_response), a refusal of tokengate's own request is
// a 503 with a long Retry-After, counted as sts_config_error and shown as
// degraded in /readyz (still 200) until the STS accepts a request again, and
// a denial passes the STS's reason through when it is safe to show.
func TestE2ERemoteSTSInterop(t *testing.T) {
	idp, sts := newE2EIdP(t), newIOScriptedSTS(t)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	t.Setenv("TOKENGATE_TEST_CONNECTOR", "ldap-corp")
	g := startRemoteE2EWith(t, idp, fmt.Sprintf("token_endpoint: %q", sts.TokenURL()), orders, inventory, func(s string) string {
		return strings.Replace(s, "    timeout: 2s\n", "    timeout: 2s\n    extra_params:\n      connector_id: ${TOKENGATE_TEST_CONNECTOR}\n      tenant: acme\n", 1)
	})
	n := 0
	umbrella := func() string {
		n++ // a new subject: a new cache key
		return idp.mint(t, map[string]any{"sub": fmt.Sprintf("u%d", n), "aud": audOrders, "scope": "orders:read"})
	}
	exchanges := func(result string) float64 {
		return scrape(t, g)[series("tokengate_exchanges_total", map[string]string{"audience": audOrders, "mode": "remote", "result": result})]
	}

	t.Run("extra params and a JWT for the route's audience", func(t *testing.T) {
		good := ioIssuedJWT([]string{"https://other.example.com", audOrders}, time.Now().Add(time.Minute))
		sts.set(func(url.Values) (int, any) { return ioTokenResponse(good) })
		resp, body := g.get(t, "/orders", umbrella())
		if resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, body)
		}
		f := sts.lastForm()
		if f.Get("connector_id") != "ldap-corp" || f.Get("tenant") != "acme" || f.Get("audience") != audOrders {
			t.Errorf("the STS received %v", f)
		}
		if got := bearerOf(orders.received()[0]); got != good {
			t.Errorf("the backend received %q", got)
		}
	})

	t.Run("a JWT for another audience is never forwarded", func(t *testing.T) {
		before := len(orders.received())
		wrong := ioIssuedJWT("https://billing.example.com", time.Now().Add(time.Minute))
		sts.set(func(url.Values) (int, any) { return ioTokenResponse(wrong) })
		resp, body := g.get(t, "/orders", umbrella())
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "5" {
			t.Fatalf("status %d Retry-After %q %s; want 503, 5", resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if len(orders.received()) != before {
			t.Error("the backend received the token")
		}
		if got := exchanges("invalid_response"); got != 1 {
			t.Errorf("exchanges{result=invalid_response} = %v, want 1", got)
		}
		logs := g.logs.String()
		if !strings.Contains(logs, sts.TokenURL()) || !strings.Contains(logs, "billing.example.com") {
			t.Errorf("the log does not name the STS and the wrong audience:\n%s", logs)
		}
		if strings.Contains(logs, wrong) || strings.Contains(logs, wrong[strings.LastIndex(wrong, ".")+1:]) {
			t.Error("the issued token is in the logs")
		}
	})

	t.Run("the STS refuses tokengate's request", func(t *testing.T) {
		sts.set(func(url.Values) (int, any) {
			return 401, map[string]string{"error": "invalid_client", "error_description": "client tokengate: unknown connector"}
		})
		for i := range 2 {
			resp, body := g.get(t, "/orders", umbrella())
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "30" || resp.Header.Get("WWW-Authenticate") != "" {
				t.Fatalf("request %d: status %d Retry-After %q %s; want 503 with Retry-After 30", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
		}
		if got := exchanges("sts_config_error"); got != 2 {
			t.Errorf("exchanges{result=sts_config_error} = %v, want 2", got)
		}
		if !strings.Contains(g.logs.String(), "client tokengate: unknown connector") {
			t.Error("the STS's error_description is not logged")
		}
		status, ready := ioReadyz(t, g)
		if status != 200 || ready.Status != "degraded" || !strings.Contains(ready.Degraded["sts"], "invalid_client") {
			t.Errorf("/readyz = %d %+v; want 200, degraded sts: invalid_client", status, ready)
		}

		good := ioIssuedJWT(audOrders, time.Now().Add(time.Minute))
		sts.set(func(url.Values) (int, any) { return ioTokenResponse(good) })
		if resp, body := g.get(t, "/orders", umbrella()); resp.StatusCode != 200 {
			t.Fatalf("after the fix: %d %s", resp.StatusCode, body)
		}
		if status, ready := ioReadyz(t, g); status != 200 || len(ready.Degraded) != 0 {
			t.Errorf("/readyz after a success = %d %+v; want no degraded part", status, ready)
		}
	})

	t.Run("a denial shows the STS's reason when it is safe", func(t *testing.T) {
		for _, tc := range []struct{ desc, want string }{
			{"audience https://orders.example.com needs scope orders:admin", "needs scope orders:admin"},
			{"token " + strings.Repeat("x", 60) + " refused", ""},
		} {
			sts.set(func(url.Values) (int, any) {
				return 400, map[string]string{"error": "invalid_target", "error_description": tc.desc}
			})
			resp, body := g.get(t, "/orders", umbrella())
			if resp.StatusCode != 403 {
				t.Fatalf("status %d %s", resp.StatusCode, body)
			}
			shown := strings.Contains(body, tc.desc) && strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.want)
			if (tc.want != "") != shown {
				t.Errorf("description %q shown=%v: %s / %s", tc.desc, shown, body, resp.Header.Get("WWW-Authenticate"))
			}
		}
	})
}
