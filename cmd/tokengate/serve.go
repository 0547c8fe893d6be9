package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/logwriter"
	build "github.com/tokengate/tokengate/internal/server"
)

// runServe implements `tokengate serve --config FILE`.
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file")
	watch := fs.Bool("watch", true, "reload when the configuration file or its signing keys change on disk")
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
	// Log lines are written in batches (a write(2) per access line was the
	// largest cost of a cached request at log.level info); closing the
	// writer after the drain writes every line, so a SIGTERM loses none.
	out := logwriter.New(stderr, logwriter.DefaultInterval)
	defer out.Close()
	logger := newLogger(cfg.Log, out)
	// go-redis logs through a package-level logger: set once per process, here.
	redis.SetLogger(redisLog{logger})
	srv, err := startServer(ctx, serverOptions{ConfigPath: *path, Config: cfg, Logger: logger, Watch: *watch})
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
			logger.Info("shutting down", "signal", sig.String())
			return shutdownUntilSignal(srv, signals, logger)
		case <-ctx.Done():
			return srv.Shutdown(context.Background())
		case err := <-srv.Done():
			return err
		}
	}
}

// shutdownUntilSignal shuts srv down gracefully; a second SIGINT or SIGTERM
// cuts the delay and the drain short.
func shutdownUntilSignal(srv *server, signals <-chan os.Signal, logger *slog.Logger) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	for {
		select {
		case err := <-done:
			return err
		case sig := <-signals:
			if sig != syscall.SIGHUP {
				logger.Warn("second signal: stopping without waiting for in-flight requests", "signal", sig.String())
				cancel()
			}
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
	// AuthzListener and AuthzGRPCListener replace authz.listen and
	// authz.grpc_listen when set (tests).
	AuthzListener     net.Listener
	AuthzGRPCListener net.Listener
	// Watch reloads when the file at ConfigPath, or a signing key it names,
	// changes on disk (a Kubernetes ConfigMap or Secret update included).
	Watch bool
	// WatchDebounce is how long the watcher waits for a burst of file events
	// to settle before it looks at the files (0 => 250ms).
	WatchDebounce time.Duration
	// After waits for server.shutdown_delay (nil => time.After); tests inject it.
	After func(time.Duration) <-chan time.Time
}

// server runs the edge and admin listeners over the current generation.
type server struct {
	opts     serverOptions
	proc     *process
	gen      atomic.Pointer[build.Generation]
	reloadMu sync.Mutex
	edge     *http.Server
	admin    *http.Server
	edgeAddr net.Addr
	adminAdr net.Addr
	done     chan error
	stopOnce sync.Once
	watcher  *configWatcher // nil when not watching
	// The authz listeners; nil when off.
	authz      *http.Server
	authzGRPC  *grpc.Server
	authzHC    *health.Server
	authzAddr  net.Addr
	authzGAddr net.Addr
}

// startServer builds the first generation, binds both listeners and serves
// until Shutdown. It returns once the listeners accept connections.
func startServer(ctx context.Context, opts serverOptions) (*server, error) {
	proc, err := newProcess(opts.Logger, opts.Config.Tracing)
	if err != nil {
		return nil, err
	}
	gen, err := build.Build(ctx, proc.Process, opts.Config, nil, build.Options{})
	if err != nil {
		return nil, err
	}
	s := &server{opts: opts, proc: proc, done: make(chan error, 2)}
	s.gen.Store(gen)

	cfg := opts.Config.Server
	edgeLn, err := listen(opts.EdgeListener, cfg.Listen)
	if err != nil {
		gen.Close()
		return nil, err
	}
	adminLn, err := listen(opts.AdminListener, cfg.AdminListen)
	if err != nil {
		edgeLn.Close()
		gen.Close()
		return nil, err
	}
	s.edgeAddr, s.adminAdr = edgeLn.Addr(), adminLn.Addr()
	errorLog := slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	s.edge = &http.Server{
		TLSConfig:         s.edgeTLS(),
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.gen.Load().Handler().ServeHTTP(w, r) }),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.D(),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       cfg.IdleTimeout.D(),
		ErrorLog:          errorLog,
		Protocols:         edgeProtocols(),
	}
	s.admin = &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.gen.Load().Admin().ServeHTTP(w, r) }),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.D(),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       cfg.IdleTimeout.D(),
		ErrorLog:          errorLog,
	}
	go func() {
		var err error
		if cfg.TLS != nil {
			// The certificate was loaded by the build (gen.TLS()), so a
			// broken file failed before any listener was bound.
			err = s.edge.ServeTLS(edgeLn, "", "")
		} else {
			err = s.edge.Serve(edgeLn)
		}
		s.serveEnded("edge", err)
	}()
	go func() { s.serveEnded("admin", s.admin.Serve(adminLn)) }()
	if err := s.startAuthz(errorLog); err != nil {
		_ = s.edge.Close()
		_ = s.admin.Close()
		gen.Close()
		return nil, err
	}
	if opts.Watch && opts.ConfigPath != "" {
		// Without a watcher SIGHUP still reloads, so a failure here is not fatal.
		if s.watcher, err = startWatcher(s, opts.WatchDebounce); err != nil {
			opts.Logger.Warn("not watching the configuration file; reload with SIGHUP", "error", err)
		}
	}
	opts.Logger.Info("tokengate serving",
		"edge", s.edgeAddr.String(), "admin", s.adminAdr.String(),
		"routes", len(opts.Config.Routes), "issuers", len(opts.Config.Issuers))
	return s, nil
}

// startAuthz binds and serves the authz listeners that are on
// (authz.listen, authz.grpc_listen). They decide with the current
// generation, so a reload swaps them with the edge.
func (s *server) startAuthz(errorLog *log.Logger) error {
	cfg := s.opts.Config
	current := func() *build.Generation { return s.gen.Load() }
	if cfg.Authz.Listen != "" || s.opts.AuthzListener != nil {
		ln, err := listen(s.opts.AuthzListener, cfg.Authz.Listen)
		if err != nil {
			return err
		}
		s.authzAddr = ln.Addr()
		s.authz = &http.Server{
			Handler:           build.AuthzHTTP(current),
			ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout.D(),
			MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
			IdleTimeout:       cfg.Server.IdleTimeout.D(),
			ErrorLog:          errorLog,
		}
		go func() { s.serveEnded("authz", s.authz.Serve(ln)) }()
	}
	if cfg.Authz.GRPCListen != "" || s.opts.AuthzGRPCListener != nil {
		ln, err := listen(s.opts.AuthzGRPCListener, cfg.Authz.GRPCListen)
		if err != nil {
			if s.authz != nil {
				_ = s.authz.Close()
			}
			return err
		}
		s.authzGAddr = ln.Addr()
		s.authzGRPC, s.authzHC = build.AuthzGRPC(current)
		go func() { s.serveEnded("authz grpc", s.authzGRPC.Serve(ln)) }()
	}
	return nil
}

// shutdownAuthz drains the authz listeners within ctx: the health service
// reports NOT_SERVING first, then in-flight decisions finish.
func (s *server) shutdownAuthz(ctx context.Context) error {
	var err error
	if s.authz != nil {
		err = s.authz.Shutdown(ctx)
	}
	if s.authzGRPC != nil {
		s.authzHC.Shutdown()
		stopped := make(chan struct{})
		go func() { s.authzGRPC.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.authzGRPC.Stop()
			if err == nil {
				err = ctx.Err()
			}
		}
	}
	return err
}

// edgeTLS is the edge listener's TLS configuration: the certificate of
// the generation in use, asked for at each handshake, so that a reload and
// a certificate rotated on disk (internal/server polls the files) both
// apply to new connections. nil without server.tls.
func (s *server) edgeTLS() *tls.Config {
	if s.gen.Load().TLS() == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			t := s.gen.Load().TLS()
			if t == nil { // a reload removed server.tls: a restart applies it
				return nil, errors.New("server.tls was removed from the configuration; restart to serve without TLS")
			}
			return t.GetCertificate(hello)
		},
	}
}

// edgeProtocols are what the edge listener speaks: HTTP/1.1, HTTP/2 over
// TLS (ALPN) and cleartext HTTP/2 with prior knowledge (h2c, what gRPC
// clients send); an HTTP/1.1 Upgrade to h2c is not offered.
func edgeProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// serveEnded reports a listener that stopped for another reason than Shutdown.
func (s *server) serveEnded(name string, err error) {
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
		s.done <- fmt.Errorf("%s listener: %w", name, err)
	}
}

// Done delivers an error when a listener fails.
func (s *server) Done() <-chan error { return s.done }

// EdgeURL and AdminURL are the bound addresses as base URLs.
func (s *server) EdgeURL() string  { return "http://" + s.edgeAddr.String() }
func (s *server) AdminURL() string { return "http://" + s.adminAdr.String() }

// AuthzURL is the forward-auth listener's base URL and AuthzGRPCAddr the
// ext_authz listener's address; "" when off.
func (s *server) AuthzURL() string {
	if s.authzAddr == nil {
		return ""
	}
	return "http://" + s.authzAddr.String()
}

func (s *server) AuthzGRPCAddr() string {
	if s.authzGAddr == nil {
		return ""
	}
	return s.authzGAddr.String()
}

// Reload loads the configuration file again and swaps in a new generation.
// A file that fails to load or build changes nothing.
func (s *server) Reload(ctx context.Context) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	log := s.proc.Logger
	fail := func(err error) error {
		s.proc.reloaded(false)
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
	oldCfg := old.Config()
	if cfg.Server.Listen != oldCfg.Server.Listen || cfg.Server.AdminListen != oldCfg.Server.AdminListen ||
		(cfg.Server.TLS == nil) != (oldCfg.Server.TLS == nil) || cfg.Authz.Listen != oldCfg.Authz.Listen ||
		cfg.Authz.GRPCListen != oldCfg.Authz.GRPCListen {
		log.Warn("listener settings changed; they take effect only after a restart",
			"listen", cfg.Server.Listen, "admin_listen", cfg.Server.AdminListen,
			"authz.listen", cfg.Authz.Listen, "authz.grpc_listen", cfg.Authz.GRPCListen)
	}
	if s.proc.TracingChanged(cfg) {
		log.Warn("tracing settings changed; they take effect only after a restart (the tracer is process-wide)")
	}
	// Build new, swap, release old: in-flight requests keep their
	// reference to the old gateway and finish; only its idle upstream
	// connections and its Redis client are closed.
	next, err := build.Build(ctx, s.proc.Process, cfg, old, build.Options{})
	if err != nil {
		return fail(fmt.Errorf("reload %s: %w", s.opts.ConfigPath, err))
	}
	s.gen.Store(next)
	old.Close()
	s.proc.reloaded(true)
	log.Info("configuration reloaded", "routes", len(cfg.Routes), "issuers", len(cfg.Issuers))
	return nil
}

// Shutdown fails readiness, keeps serving for server.shutdown_delay so load
// balancers stop sending, then stops accepting and drains in-flight requests
// for up to server.shutdown_grace. Cancelling ctx cuts the delay and the drain short.
func (s *server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.proc.Draining.Store(true)
		// Clients on kept-alive connections reconnect, and so reach a pod
		// that is not shutting down.
		s.edge.SetKeepAlivesEnabled(false)
		if s.authz != nil {
			s.authz.SetKeepAlivesEnabled(false)
		}
		if s.watcher != nil {
			s.watcher.Stop()
		}
		cfg := s.gen.Load().Config().Server
		if d := cfg.ShutdownDelay.D(); d > 0 {
			s.proc.Logger.Info("not ready any more; serving on while load balancers catch up", "shutdown_delay", d.String())
			after := s.opts.After
			if after == nil {
				after = time.After
			}
			select {
			case <-after(d):
			case <-ctx.Done():
			}
		}
		grace := cfg.ShutdownGrace.D()
		s.proc.Logger.Info("closing the listeners; draining in-flight requests", "shutdown_grace", grace.String())
		ctx, cancel := context.WithTimeout(ctx, grace)
		defer cancel()
		err = s.edge.Shutdown(ctx)
		if aerr := s.admin.Shutdown(ctx); err == nil {
			err = aerr
		}
		if aerr := s.shutdownAuthz(ctx); err == nil {
			err = aerr
		}
		s.gen.Load().Close()
		if err != nil {
			err = fmt.Errorf("shutdown: in-flight requests did not finish within %s: %w", grace, err)
		}
		// The last spans are flushed within what is left of the grace.
		if terr := s.proc.Shutdown(ctx); terr != nil {
			s.proc.Logger.Warn("tracing: spans not flushed at exit", "error", terr)
		}
	})
	return err
}
