package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/config"
)

// TestCloseReleasesConnectionsOfLateRequests: a request that picked a
// gateway before a reload replaced it can reach the proxy after Close. Its
// upstream connection must not stay in the old transport's idle pool (a new
// dial undoes CloseIdleConnections), where it lingered until the 90s idle
// timeout: with frequent reloads, connections and goroutines piled up.
// Found by the soak test (make soak).
func TestCloseReleasesConnectionsOfLateRequests(t *testing.T) {
	var opened, closed atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok"))
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	env := newEnv(t, []config.Route{testRoute("orders", "/orders", up.URL)}, nil)

	env.gw.Close() // the reload happened; this request still holds the old gateway
	if resp, body := env.do(t, http.MethodGet, "/orders", bearer(umbrella)); resp.StatusCode != http.StatusOK {
		t.Fatalf("the late request got %d %s, want 200", resp.StatusCode, body)
	}
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for opened.Load() == 0 || closed.Load() < opened.Load() {
		select {
		case <-deadline:
			t.Fatalf("%d of %d upstream connections of a closed gateway stayed open", opened.Load()-closed.Load(), opened.Load())
		case <-tick.C:
		}
	}
}
