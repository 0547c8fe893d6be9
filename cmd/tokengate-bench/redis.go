package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// runRedis measures a Redis-tier hit with the memory tier cold: a second
// tokengate with cache.redis and cache.max_entries 1, so that over the
// spread of 10,000 (token, route) pairs nearly every request misses memory
// and is answered from Redis. It is compared with the main tokengate
// (memory tier holding every pair) on the same spread, round by round.
func runRedis(e *env, w io.Writer) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		fmt.Fprintln(w, "redis: skipped: redis-server is not installed (make redis-server, or apt-get install redis-server)")
		return nil
	}
	dir := filepath.Join(e.dir, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	addr, err := startRedisServer(bin, dir)
	if err != nil {
		return err
	}
	e.closers = append(e.closers, addr.stop)
	key := make([]byte, 32)
	rand.Read(key)
	tgDir := filepath.Join(e.dir, "tokengate-redis")
	if err := os.MkdirAll(tgDir, 0o700); err != nil {
		return err
	}
	rt, err := startTokengate(tokengateOptions{binary: e.o.tokengate, upstream: e.backend.url, idp: e.idp, logLevel: e.o.logLevel, dir: tgDir,
		redis: addr.addr, redisKey: base64.StdEncoding.EncodeToString(key), maxEntries: 1})
	if err != nil {
		return err
	}
	e.closers = append(e.closers, rt.close)
	redisSide := side{"tokengate-redis", rt, newClient(rt.url, e.o.conns)}

	warm, load, err := e.spreadLoad()
	if err != nil {
		return err
	}
	for _, s := range []side{e.tgSide(), redisSide} {
		if _, err := s.c.run(s.t.pid(), warm(), time.Minute); err != nil {
			return fmt.Errorf("warm %s: %w", s.name, err)
		}
	}
	_, err = e.compareSides(w, "redis", e.tgSide(), redisSide, load, func() (workload, error) { return load, nil }, nil)
	return err
}

// redisServer is a redis-server process on a free loopback port with no
// persistence (the same settings as internal/redistest).
type redisServer struct {
	addr string
	stop func()
}

func startRedisServer(bin, dir string) (*redisServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			n, _ := io.ReadFull(c, buf)
			c.Close()
			if string(buf[:n]) == "+PONG\r\n" {
				return &redisServer{addr: addr, stop: stop}, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			return nil, fmt.Errorf("redis-server on %s did not answer PING within 10s\n%s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
