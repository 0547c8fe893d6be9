package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestE2EReadinessOneIdPDown (contract section 6): an IdP that is down from
// the start does not take the replica out of the Service while another
// issuer's tokens still verify; it is named under "degraded" and exported
// as tokengate_component_degraded. An IdP whose JWKS stops answering after
// start is reported at its first failed refresh, and cleared by a good one.
func TestE2EReadinessOneIdPDown(t *testing.T) {
	idp, idp2 := newE2EIdP(t), newE2EIdP(t)
	idp2.SetDown(true)
	orders, inventory := newE2EBackend(t, "orders"), newE2EBackend(t, "inventory")
	second := fmt.Sprintf("  - issuer: %q\n    jwks_uri: %q\n    algorithms: [ES256]\n    leeway: 5s\n    min_refresh_interval: 1s\n",
		idp2.URL(), idp2.URL()+"/jwks.json")
	g := startE2EWith(t, idp, orders, inventory, e2eOptions{edit: func(text, _ string) string {
		return strings.Replace(text, "exchange:\n", second+"exchange:\n", 1)
	}})
	readyz := func() (int, map[string]string) {
		t.Helper()
		resp, body := get(t, g.srv.AdminURL()+"/readyz")
		var rb struct {
			Degraded map[string]string `json:"degraded"`
		}
		if err := json.Unmarshal([]byte(body), &rb); err != nil {
			t.Fatalf("/readyz %q: %v", body, err)
		}
		return resp.StatusCode, rb.Degraded
	}
	degradedSeries := func(issuer string) string {
		t.Helper()
		_, body := get(t, g.srv.AdminURL()+"/metrics")
		prefix := fmt.Sprintf("tokengate_component_degraded{component=%q} ", "issuer "+issuer)
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				return v
			}
		}
		return "absent"
	}

	status, degraded := readyz()
	if status != 200 || !strings.Contains(degraded["issuer "+idp2.URL()], "no usable signing keys") {
		t.Fatalf("/readyz with one IdP down from the start = %d %v; want 200 naming it degraded", status, degraded)
	}
	if _, ok := degraded["issuer "+idp.URL()]; ok {
		t.Errorf("the healthy issuer is named degraded: %v", degraded)
	}
	if got := degradedSeries(idp2.URL()); got != "1" {
		t.Errorf("component_degraded for the down IdP = %s, want 1", got)
	}
	if got := degradedSeries(idp.URL()); got != "0" {
		t.Errorf("component_degraded for the healthy IdP = %s, want 0", got)
	}
	token := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	if resp, body := g.get(t, "/orders", token); resp.StatusCode != 200 {
		t.Fatalf("the healthy issuer's token while the other IdP is down: %d %s", resp.StatusCode, body)
	}

	// The healthy IdP stops answering after start: a token with a new kid
	// makes the gateway refresh, the refresh fails, the issuer is degraded
	// at once (its known keys still verify, so the replica stays ready).
	// (Refreshes are at most one per min_refresh_interval: retry until one ran.)
	idp.SetDown(true)
	idp.addKey(t, "idp-key-new")
	waitFor(t, func() bool {
		if resp, _ := g.get(t, "/orders", idp.mint(t, map[string]any{"sub": "u", "aud": audOrders})); resp.StatusCode == 200 {
			t.Fatal("a token signed with a key the gateway could not fetch was accepted")
		}
		status, degraded = readyz()
		return strings.Contains(degraded["issuer "+idp.URL()], "jwks refresh failed")
	})
	if status != 200 {
		t.Fatalf("/readyz after a failed refresh = %d %v; want 200 (known keys still verify)", status, degraded)
	}
	if resp, body := g.get(t, "/orders", token); resp.StatusCode != 200 {
		t.Fatalf("a known key after the failed refresh: %d %s", resp.StatusCode, body)
	}

	// It comes back: the next refresh (the new kid, past min_refresh_interval) clears it.
	idp.SetDown(false)
	waitFor(t, func() bool {
		resp, _ := g.get(t, "/orders", idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"}))
		return resp.StatusCode == 200
	})
	if _, degraded = readyz(); degraded["issuer "+idp.URL()] != "" {
		t.Errorf("still degraded after a good refresh: %v", degraded)
	}
	if got := degradedSeries(idp.URL()); got != "0" {
		t.Errorf("component_degraded after recovery = %s, want 0", got)
	}
}
