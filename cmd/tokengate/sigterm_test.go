package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// freeAddr is a loopback address nothing listens on (for a subprocess's config).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// buildBinary compiles cmd/tokengate with `go build` into a temporary folder.
func buildBinary(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tokengate")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestSIGTERMLosesNoInFlightRequest runs the real binary, sends SIGTERM
// while requests wait on a slow backend, and checks every one completes 200
// and the process exits 0.
func TestSIGTERMLosesNoInFlightRequest(t *testing.T) {
	bin := buildBinary(t)
	idp := newE2EIdP(t)
	const n = 20
	var arrived atomic.Int32
	all := make(chan struct{})
	release := make(chan struct{})
	slow := &e2eBackend{name: "orders"}
	slow.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) == n {
			close(all)
		}
		<-release
		io.WriteString(w, "done")
	}))
	t.Cleanup(slow.srv.Close)
	inventory := newE2EBackend(t, "inventory")

	dir := t.TempDir()
	writeES256Key(t, filepath.Join(dir, "keys", "es256.pem"))
	edge, admin := freeAddr(t), freeAddr(t)
	text := fmt.Sprintf(e2eConfig, admin, idp.URL(), idp.URL()+"/jwks.json", "http://"+admin,
		slow.srv.URL, inventory.srv.URL, audOrders, audInventory)
	text = strings.Replace(text, `listen: "127.0.0.1:0"`, fmt.Sprintf("listen: %q", edge), 1)
	path := filepath.Join(dir, "tokengate.yaml")
	writeFile(t, path, []byte(text))
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // no-op once it has exited
		<-exited
	})
	client := &http.Client{Timeout: 20 * time.Second}
	waitFor(t, func() bool {
		resp, err := client.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	umbrella := idp.mint(t, map[string]any{"sub": "u", "aud": audOrders, "scope": "orders:read"})
	results := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+edge+"/orders", nil)
			req.Header.Set("Authorization", "Bearer "+umbrella)
			resp, err := client.Do(req)
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- fmt.Sprintf("%d %s", resp.StatusCode, b)
		})
	}
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatalf("only %d of %d requests reached the backend", arrived.Load(), n)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "shutting down") })
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		if r != "200 done" {
			t.Errorf("an in-flight request during SIGTERM ended with %q", r)
		}
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Errorf("tokengate exited with %v after SIGTERM, want 0\n%s", exitErr, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("tokengate did not exit within 15s of SIGTERM")
	}
	if strings.Contains(logs.String(), umbrella) {
		t.Error("the umbrella token appears in the binary's logs")
	}
	// Log lines are written in batches: every request that finished during
	// the drain still has its access line once the process has exited.
	if got := strings.Count(logs.String(), `"msg":"request","request_id"`); got < n {
		t.Errorf("%d access lines after SIGTERM for %d requests: lines were lost\n%s", got, n, logs.String())
	}
}
