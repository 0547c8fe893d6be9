// Package redistest starts real redis-server processes for tests: one node
// or a small cluster, each on a free loopback port with no persistence, in
// the test's temporary folder, stopped at cleanup. A node can be killed and
// restarted on the same port to test outages.
//
// When redis-server is not installed the tests are skipped, unless
// TOKENGATE_REQUIRE_REDIS=1 (set by `make test`), which fails them with the
// install hint instead: CI must never pass by skipping.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv makes a missing redis-server fail the test instead of skipping it.
const RequireEnv = "TOKENGATE_REQUIRE_REDIS"

// installHint says how to get redis-server.
const installHint = "install it with `apt-get install -y redis-server` (`make test` does), or unset " +
	RequireEnv + " to skip the Redis tests"

// startTimeout bounds waiting for a node to answer PING.
const startTimeout = 15 * time.Second

// Binary returns the path of redis-server, or skips (fails under
// TOKENGATE_REQUIRE_REDIS=1) the test when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("redis-server not found on PATH: %s", installHint)
		}
		t.Skipf("redis-server not found on PATH: %s", installHint)
	}
	return p
}

// Server is one redis-server process.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	port    int
	extra   []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
}

// Start starts a redis-server on a free loopback port and waits until it
// answers PING. It is stopped when the test ends.
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir(), port: freePort(t), extra: extraArgs}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// Addr is the node's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the node's port.
func (s *Server) Port() int { return s.port }

// Client returns a new client of this node, closed at cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *Server) start() {
	s.t.Helper()
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no",
	}, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.stopped = cmd, exited, false
	s.mu.Unlock()
	if err := waitPing(s.Addr(), exited); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		s.Stop()
		s.t.Fatalf("redis-server on %s: %v\n%s", s.Addr(), err, tail(string(log), 20))
	}
}

// Kill kills the node (SIGKILL, as a crash) and waits until it is gone.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.stopped = true
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts the node again on the same port (empty: nothing is saved).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Stop ends the node; safe to call more than once.
func (s *Server) Stop() { s.Kill() }

// waitPing polls the address until a PING is answered, the process exits or
// startTimeout passes.
func waitPing(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if ping(addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %s", startTimeout)
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited during start")
		case <-tick.C:
		}
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Server
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	a := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		a[i] = n.Addr()
	}
	return a
}

// StartCluster starts n cluster-enabled nodes, gives each an equal share of
// the 16384 slots, joins them, and waits until every node reports the
// cluster ok and knows every node.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	// The cluster bus defaults to port+10000, which for a port from the
	// ephemeral range can pass 65535 or land on a port another process
	// holds: give every node a bus port of its own, picked free too.
	buses := make([]int, n)
	for i := range n {
		buses[i] = freePort(t)
		c.Nodes = append(c.Nodes, Start(t, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
			"--cluster-port", strconv.Itoa(buses[i])))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clients := make([]*redis.Client, n)
	for i, node := range c.Nodes {
		clients[i] = node.Client(t)
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := clients[i].ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			t.Fatalf("cluster addslotsrange on %s: %v", node.Addr(), err)
		}
	}
	for i, node := range c.Nodes[1:] {
		// CLUSTER MEET ip port cluster-bus-port (Redis 7): go-redis's
		// ClusterMeet cannot pass the bus port.
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", node.Port(), buses[i+1]).Err(); err != nil {
			t.Fatalf("cluster meet %s: %v", node.Addr(), err)
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if clusterReady(ctx, clients) {
			return c
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the %d-node cluster did not become ready within 30s", n)
		case <-tick.C:
		}
	}
}

func clusterReady(ctx context.Context, clients []*redis.Client) bool {
	for _, c := range clients {
		info, err := c.ClusterInfo(ctx).Result()
		if err != nil || !strings.Contains(info, "cluster_state:ok") ||
			!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(clients))) {
			return false
		}
		shards, err := c.ClusterShards(ctx).Result()
		if err != nil || len(shards) != len(clients) {
			return false
		}
	}
	return true
}
