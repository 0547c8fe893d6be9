package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// adminGet sends GET path to the admin listener with an optional bearer token.
func adminGet(t *testing.T, g *e2eGateway, auth, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.srv.AdminURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// listedRevocation is one item of GET /admin/revocations.
type listedRevocation struct {
	Kind         string     `json:"kind"`
	Value        string     `json:"value"`
	Kid          string     `json:"kid"`
	IssuedBefore *time.Time `json:"issued_before"`
	At           time.Time  `json:"at"`
	Until        time.Time  `json:"until"`
}

// listRevocations reads GET /admin/revocations from g.
func listRevocations(t *testing.T, g *e2eGateway) []listedRevocation {
	t.Helper()
	resp, body := adminGet(t, g, e2eAdminToken, "/admin/revocations")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /admin/revocations = %d %s", resp.StatusCode, body)
	}
	var out struct {
		Revocations []listedRevocation `json:"revocations"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("GET /admin/revocations: %v: %s", err, body)
	}
	return out.Revocations
}

// findListed returns the listed revocation of that kind and value.
func findListed(list []listedRevocation, kind, value string) (listedRevocation, bool) {
	for _, r := range list {
		if r.Kind == kind && r.Value == value {
			return r, true
		}
	}
	return listedRevocation{}, false
}

// refusedEverywhere waits until every replica answers 401 invalid_token to
// tok and returns how long that took from start (the event): the
// propagation time the operations guide reports.
func refusedEverywhere(t *testing.T, gws []*e2eGateway, tok string, start time.Time) time.Duration {
	t.Helper()
	for _, g := range gws {
		if !waitFor(t, func() bool {
			resp, _ := g.get(t, "/orders", tok)
			return resp.StatusCode == 401 && strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
		}) {
			t.Fatalf("the token is still accepted on a replica")
		}
	}
	return time.Since(start)
}

// TestE2ERedisRevokeClientAndIssuer: /admin/revoke by client_id (client_id
// or azp) and by iss with issued_before refuses the matching tokens on
// both replicas, leaves the others alone, is listed by GET
// /admin/revocations on every replica (values, never a token), and writes
// one audit line naming the caller.
func TestE2ERedisRevokeClientAndIssuer(t *testing.T) {
	rs := startReplicas(t, 2, nil)
	g1, g2 := rs.gws[0], rs.gws[1]
	past := time.Now().Add(-time.Minute)
	mint := func(extra map[string]any) string {
		c := map[string]any{"sub": "alice", "aud": audOrders, "scope": "orders:read", "iat": past.Unix()}
		for k, v := range extra {
			c[k] = v
		}
		return rs.idp.mint(t, c)
	}
	appA := mint(map[string]any{"client_id": "app-a"})
	appAzp := mint(map[string]any{"azp": "app-a", "sub": "carol"})
	appB := mint(map[string]any{"client_id": "app-b", "sub": "bob"})
	for _, g := range rs.gws {
		for _, tok := range []string{appA, appAzp, appB} {
			if resp, body := g.get(t, "/orders", tok); resp.StatusCode != 200 {
				t.Fatalf("before the revocation: %d %s", resp.StatusCode, body)
			}
		}
	}

	start := time.Now()
	resp, body := adminPost(t, g1, e2eAdminToken, `{"client_id":"app-a"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"revoked":"client_id"`) || strings.Contains(body, "app-a") {
		t.Fatalf("revoke client_id = %d %s", resp.StatusCode, body)
	}
	took := refusedEverywhere(t, rs.gws, appA, start)
	refusedEverywhere(t, rs.gws, appAzp, start)
	t.Logf("client_id revocation: refused on both replicas %s after POST /admin/revoke", took)
	for _, g := range rs.gws {
		if resp, body := g.get(t, "/orders", appB); resp.StatusCode != 200 {
			t.Errorf("another client's token after the revocation: %d %s", resp.StatusCode, body)
		}
	}
	// A token issued after the revocation (a new client credential) is accepted.
	freshA := mint(map[string]any{"client_id": "app-a", "iat": time.Now().Add(2 * time.Second).Unix()})
	if resp, body := g2.get(t, "/orders", freshA); resp.StatusCode != 200 {
		t.Errorf("app-a token issued after the revocation: %d %s", resp.StatusCode, body)
	}

	// The whole issuer, before a cut-off: older tokens refused, newer kept.
	cut := time.Now().Add(-30 * time.Second)
	newer := mint(map[string]any{"client_id": "app-c", "iat": time.Now().Unix()})
	start = time.Now()
	resp, body = adminPost(t, g2, e2eAdminToken, fmt.Sprintf(`{"iss":%q,"issued_before":%d}`, rs.idp.URL(), cut.Unix()))
	if resp.StatusCode != 200 || !strings.Contains(body, `"revoked":"iss"`) {
		t.Fatalf("revoke iss = %d %s", resp.StatusCode, body)
	}
	took = refusedEverywhere(t, rs.gws, appB, start)
	t.Logf("iss revocation: refused on both replicas %s after POST /admin/revoke", took)
	for _, g := range rs.gws {
		if resp, body := g.get(t, "/orders", newer); resp.StatusCode != 200 {
			t.Errorf("a token issued after issued_before: %d %s", resp.StatusCode, body)
		}
	}
	// RFC 3339 is accepted too.
	if resp, body := adminPost(t, g1, e2eAdminToken, fmt.Sprintf(`{"iss":%q,"issued_before":%q}`, rs.idp.URL(), cut.UTC().Format(time.RFC3339))); resp.StatusCode != 200 {
		t.Errorf("revoke iss with an RFC 3339 issued_before = %d %s", resp.StatusCode, body)
	}

	// Both replicas list both revocations, with their values.
	for i, g := range rs.gws {
		if !waitFor(t, func() bool {
			list := listRevocations(t, g)
			_, c := findListed(list, "client_id", "app-a")
			_, s := findListed(list, "iss", rs.idp.URL())
			return c && s
		}) {
			t.Fatalf("replica %d lists %+v", i+1, listRevocations(t, g))
		}
		list := listRevocations(t, g)
		r, _ := findListed(list, "iss", rs.idp.URL())
		if r.IssuedBefore == nil || !r.IssuedBefore.Equal(time.Unix(cut.Unix(), 0)) || !r.Until.After(time.Now()) || r.At.IsZero() {
			t.Errorf("replica %d lists the iss revocation as %+v", i+1, r)
		}
	}
	if resp, _ := adminGet(t, g1, "", "/admin/revocations"); resp.StatusCode != 401 ||
		resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("GET /admin/revocations without the admin token = %d; want 401", resp.StatusCode)
	}
	if resp, _ := adminGet(t, g1, "wrong-token-0123456789", "/admin/revocations"); resp.StatusCode != 401 {
		t.Errorf("GET /admin/revocations with a wrong admin token = %d; want 401", resp.StatusCode)
	}

	// A token revocation is listed by a hash, never the token.
	if resp, body := adminPost(t, g1, e2eAdminToken, fmt.Sprintf(`{"token":%q}`, freshA)); resp.StatusCode != 200 {
		t.Fatalf("revoke token = %d %s", resp.StatusCode, body)
	}
	waitFor(t, func() bool {
		for _, r := range listRevocations(t, g2) {
			if r.Kind == "token" {
				return true
			}
		}
		return false
	})
	for _, g := range rs.gws {
		_, raw := adminGet(t, g, e2eAdminToken, "/admin/revocations")
		for _, form := range readable(freshA) {
			if strings.Contains(raw, form) {
				t.Errorf("GET /admin/revocations shows the revoked token")
			}
		}
	}

	// One audit line per revocation, naming the kind and the caller.
	audit := 0
	for _, line := range strings.Split(g1.logs.String(), "\n") {
		if !strings.Contains(line, `"event":"revocation"`) {
			continue
		}
		audit++
		if !strings.Contains(line, `"caller":"127.0.0.1"`) || !strings.Contains(line, `"kind":`) {
			t.Errorf("audit line lacks the caller or kind: %s", line)
		}
		if strings.Contains(line, "app-a") || strings.Contains(line, freshA) {
			t.Errorf("audit line holds a value: %s", line)
		}
	}
	if audit != 3 {
		t.Errorf("replica 1 wrote %d audit lines; want 3 (client_id, iss, token)", audit)
	}
	if got := testutil.ToFloat64(g2.srv.proc.CacheMetrics.Revocations.WithLabelValues("client_id", "peer")); got != 1 {
		t.Errorf("replica 2 tokengate_revocations_total{by=client_id,source=peer} = %v; want 1", got)
	}
}

// TestAdversarialRevokeIssuerBodies: an iss revocation needs a usable
// issued_before, and issued_before goes with iss only: 400, nothing revoked.
func TestAdversarialRevokeIssuerBodies(t *testing.T) {
	rs := startReplicas(t, 1, nil)
	g := rs.gws[0]
	iss := rs.idp.URL()
	future := time.Now().Add(time.Hour).Unix()
	for _, body := range []string{
		fmt.Sprintf(`{"iss":%q}`, iss),
		fmt.Sprintf(`{"iss":%q,"issued_before":null}`, iss),
		fmt.Sprintf(`{"iss":%q,"issued_before":"yesterday"}`, iss),
		fmt.Sprintf(`{"iss":%q,"issued_before":-5}`, iss),
		fmt.Sprintf(`{"iss":%q,"issued_before":%d}`, iss, future),
		fmt.Sprintf(`{"sub":"alice","issued_before":%d}`, time.Now().Unix()),
		fmt.Sprintf(`{"issued_before":%d}`, time.Now().Unix()),
		`{"client_id":"  "}`,
		`{"client_id":"a","sub":"b"}`,
		`{"iss":"  ","issued_before":1}`,
	} {
		resp, out := adminPost(t, g, e2eAdminToken, body)
		if resp.StatusCode != 400 || !strings.Contains(out, `"error":"invalid_request"`) {
			t.Errorf("%s = %d %s; want 400 invalid_request", body, resp.StatusCode, out)
		}
	}
	if list := listRevocations(t, g); len(list) != 0 {
		t.Errorf("bodies that revoke nothing left %+v", list)
	}
	// A form body works too; the listing is GET only.
	form := url.Values{"iss": {iss}, "issued_before": {time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, g.srv.AdminURL()+"/admin/revoke", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("form revoke by iss = %d; want 200", resp.StatusCode)
	}
	if _, ok := findListed(listRevocations(t, g), "iss", iss); !ok {
		t.Errorf("the form revocation is not listed")
	}
	req, _ = http.NewRequest(http.MethodPost, g.srv.AdminURL()+"/admin/revocations", nil)
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /admin/revocations = %d Allow %q; want 405 GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}
