package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/logjson"
	build "github.com/tokengate/tokengate/internal/server"
)

// process is the serving process: the build's process-lifetime parts
// (internal/server: collectors, HTTP client, cache key secret, denylist,
// draining flag), and what only serving has: the build info and the reload
// metrics.
type process struct {
	*build.Process
	reloads     *prometheus.CounterVec
	reloadState *reloadGauges
}

func newProcess(logger *slog.Logger, tracing config.Tracing) (*process, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	f := promauto.With(reg)
	v, _ := buildVersion()
	f.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tokengate_build_info",
		Help: "Build information; the value is always 1.",
	}, []string{"version", "goversion"}).WithLabelValues(v, runtime.Version()).Set(1)
	reloads := f.NewCounterVec(prometheus.CounterOpts{
		Name: "tokengate_config_reloads_total",
		Help: "Configuration reloads, by result (ok, error).",
	}, []string{"result"})
	// Both series exist from the start, so alerts on errors see a zero.
	reloads.WithLabelValues("ok")
	reloads.WithLabelValues("error")
	bp, err := build.NewProcess(logger, reg, build.ProcessOptions{Tracing: tracing})
	if err != nil {
		return nil, err
	}
	return &process{Process: bp, reloads: reloads, reloadState: newReloadGauges(f)}, nil
}

// newLogger makes the process logger: JSON by default, text for people.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.Format, "text") {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	// slog.JSONHandler's output, encoded without reflection on the hot
	// path (the access line): internal/logjson.
	return slog.New(logjson.New(w, level))
}

// listen binds addr unless a listener was handed in (tests and the demo bind
// 127.0.0.1:0 first and learn the port).
func listen(ln net.Listener, addr string) (net.Listener, error) {
	if ln != nil {
		return ln, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, nil
}
