package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// runTracing compares two tokengate processes on the cache-hit path in the
// same run: one with tracing off (the env's, unless -tracing is set) and
// one exporting to a local OTLP receiver at -tracing-ratio. The throughput
// ratio is what tracing costs a request at that ratio (issue target: within
// 5% at 0.01).
func runTracing(e *env, w io.Writer) error {
	if e.o.tracing != "" {
		fmt.Fprintln(w, "tracing: skipped: -tracing is set, so the reference tokengate traces too")
		return nil
	}
	sink, err := startOTLPSink()
	if err != nil {
		return err
	}
	e.closers = append(e.closers, sink.close)
	dir := filepath.Join(e.dir, "tokengate-tracing")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tt, err := startTokengate(tokengateOptions{binary: e.o.tokengate, upstream: e.backend.url, idp: e.idp, logLevel: e.o.logLevel, dir: dir,
		otlp: sink.baseURL(), ratio: e.o.tracingRatio})
	if err != nil {
		return err
	}
	e.closers = append(e.closers, tt.close)
	traced := side{"tokengate-traced-" + e.o.tracingRatio, tt, newClient(tt.url, e.o.conns)}
	load := constant(routePath(0)+"/x", e.token)
	_, err = e.compareSides(w, "tracing", e.tgSide(), traced, load, func() (workload, error) { return load, nil }, nil)
	return err
}
