package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/config"
)

// runServe implements `tokengate serve --config FILE`.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	if *path == "" {
		fmt.Fprintln(stderr, "serve: --config FILE is required")
		return &exitError{code: 2}
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		// An invalid configuration never starts a server.
		printProblems(stderr, *path, err)
		return &exitError{code: 1}
	}
	logger := newLogger(cfg.Log, stderr)
	// go-redis logs through a package-level logger: set once per process, here.
	redis.SetLogger(redisLog{logger})
	srv, err := startServer(ctx, serverOptions{ConfigPath: *path, Config: cfg, Logger: logger})
	if err != nil {
		return err
	}

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				if err := srv.Reload(ctx); err != nil {
					logger.Error("reload failed; the running configuration is kept", "error", err)
				}
				continue
			}
			logger.Info("shutting down", "signal", sig.String(), "grace", cfg.Server.ShutdownGrace.String())
			return srv.Shutdown(context.Background())
		case <-ctx.Done():
			return srv.Shutdown(context.Background())
		case err := <-srv.Done():
			return err
		}
	}
}

// serverOptions configure startServer. Config is required; ConfigPath enables
// Reload. Listeners, when set, are used instead of binding the configured
// addresses.
type serverOptions struct {
	ConfigPath    string
	Config        *config.Config
	Logger        *slog.Logger
	EdgeListener  net.Listener
	AdminListener net.Listener
}

// server runs the edge and admin listeners over the current generation.
type server struct {
	opts     serverOptions
	proc     *process
	gen      atomic.Pointer[generation]
	reloadMu sync.Mutex
	edge     *http.Server
	admin    *http.Server
	edgeAddr net.Addr
	adminAdr net.Addr
	done     chan error
	stopOnce sync.Once
}

// startServer builds the first generation, binds both listeners and serves
// until Shutdown. It returns once the listeners accept connections.
func startServer(ctx context.Context, opts serverOptions) (*server, error) {
	proc, err := newProcess(opts.Logger)
	if err != nil {
		return nil, err
	}
	gen, err := buildGeneration(ctx, proc, opts.Config, nil)
	if err != nil {
		return nil, err
	}
	s := &server{opts: opts, proc: proc, done: make(chan error, 2)}
	s.gen.Store(gen)

	cfg := opts.Config.Server
	edgeLn, err := listen(opts.EdgeListener, cfg.Listen)
	if err != nil {
		gen.close()
		return nil, err
	}
	adminLn, err := listen(opts.AdminListener, cfg.AdminListen)
	if err != nil {
		edgeLn.Close()
		gen.close()
		return nil, err
	}
	s.edgeAddr, s.adminAdr = edgeLn.Addr(), adminLn.Addr()
	errorLog := slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	s.edge = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.gen.Load().edge.ServeHTTP(w, r) }),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.D(),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       cfg.IdleTimeout.D(),
		ErrorLog:          errorLog,
	}
	s.admin = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.gen.Load().admin.ServeHTTP(w, r) }),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.D(),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       cfg.IdleTimeout.D(),
		ErrorLog:          errorLog,
	}
	go func() {
		var err error
		if cfg.TLS != nil {
			err = s.edge.ServeTLS(edgeLn, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		} else {
			err = s.edge.Serve(edgeLn)
		}
		s.serveEnded("edge", err)
	}()
	go func() { s.serveEnded("admin", s.admin.Serve(adminLn)) }()
	opts.Logger.Info("tokengate serving",
		"edge", s.edgeAddr.String(), "admin", s.adminAdr.String(),
		"routes", len(opts.Config.Routes), "issuers", len(opts.Config.Issuers))
	return s, nil
}

// serveEnded reports a listener that stopped for another reason than Shutdown.
func (s *server) serveEnded(name string, err error) {
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.done <- fmt.Errorf("%s listener: %w", name, err)
	}
}

// Done delivers an error when a listener fails.
func (s *server) Done() <-chan error { return s.done }

// EdgeURL and AdminURL are the bound addresses as base URLs.
func (s *server) EdgeURL() string  { return "http://" + s.edgeAddr.String() }
func (s *server) AdminURL() string { return "http://" + s.adminAdr.String() }

// Reload loads the configuration file again and swaps in a new generation.
// A file that fails to load or build changes nothing.
func (s *server) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	log := s.proc.logger
	fail := func(err error) error {
		s.proc.reloads.WithLabelValues("error").Inc()
		return err
	}
	if s.opts.ConfigPath == "" {
		return fail(errors.New("reload: this server was not started from a file"))
	}
	cfg, err := loadConfig(s.opts.ConfigPath)
	if err != nil {
		return fail(fmt.Errorf("reload %s: %w", s.opts.ConfigPath, err))
	}
	old := s.gen.Load()
	if cfg.Server.Listen != old.cfg.Server.Listen || cfg.Server.AdminListen != old.cfg.Server.AdminListen ||
		(cfg.Server.TLS == nil) != (old.cfg.Server.TLS == nil) {
		log.Warn("listener settings changed; they take effect only after a restart",
			"listen", cfg.Server.Listen, "admin_listen", cfg.Server.AdminListen)
	}
	next, err := buildGeneration(ctx, s.proc, cfg, old)
	if err != nil {
		return fail(fmt.Errorf("reload %s: %w", s.opts.ConfigPath, err))
	}
	s.gen.Store(next)
	// In-flight requests keep their reference to the old gateway and finish;
	// only its idle upstream connections are closed.
	old.edge.Close()
	if next.redis != old.redis {
		old.close()
	}
	s.proc.reloads.WithLabelValues("ok").Inc()
	log.Info("configuration reloaded", "routes", len(cfg.Routes), "issuers", len(cfg.Issuers))
	return nil
}

// Shutdown fails readiness, stops accepting, and drains in-flight requests
// for up to server.shutdown_grace.
func (s *server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.proc.draining.Store(true)
		grace := s.gen.Load().cfg.Server.ShutdownGrace.D()
		ctx, cancel := context.WithTimeout(ctx, grace)
		defer cancel()
		err = s.edge.Shutdown(ctx)
		if aerr := s.admin.Shutdown(ctx); err == nil {
			err = aerr
		}
		s.gen.Load().edge.Close()
		s.gen.Load().close()
		if err != nil {
			err = fmt.Errorf("shutdown: in-flight requests did not finish within %s: %w", grace, err)
		}
	})
	return err
}
