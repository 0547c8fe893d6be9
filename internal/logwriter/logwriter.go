// Package logwriter owns the buffering of tokengate's log output: log lines
// (one access line per request, above all) are gathered in memory and
// written in batches by a goroutine of its own, so the hot path pays
// neither a write(2) per line nor a wait behind another request's write. It
// knows nothing of log formats; it only guarantees that every line handed to
// it is written, whole and in order, by Close at the latest (the serve
// command closes it after the graceful drain, so a SIGTERM loses no line).
package logwriter

import (
	"io"
	"sync"
	"time"
)

// DefaultInterval is how long a line may wait in the buffer: short enough
// that `kubectl logs -f` looks live, long enough to batch a busy second.
const DefaultInterval = 100 * time.Millisecond

const (
	// batchSize is how much makes the flusher write before its interval.
	batchSize = 64 << 10
	// maxPending bounds what may wait while the destination is slow (a
	// full pipe, a disk throttling writeback): past it, a Write waits for
	// the destination instead of growing the buffer, so nothing is dropped
	// and memory stays bounded.
	maxPending = 4 << 20
)

// Writer is a goroutine-safe buffered io.Writer. Each Write is kept whole
// (slog handlers write one record per call), so lines from concurrent
// requests never interleave. Writes append to a buffer under a short lock;
// the flusher swaps the buffer out and writes it to the destination
// without holding that lock.
type Writer struct {
	mu      sync.Mutex // guards pending, spare, closed
	pending []byte
	spare   []byte // the buffer written last, reused for the next batch
	closed  bool

	outMu sync.Mutex // serialises writes to out: batches stay in order
	out   io.Writer
	err   error // the destination's first write error; guarded by outMu

	kick      chan struct{} // a batch is ready before the interval
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// New buffers w, flushing every interval (DefaultInterval when <= 0).
func New(w io.Writer, interval time.Duration) *Writer {
	if interval <= 0 {
		interval = DefaultInterval
	}
	lw := &Writer{out: w, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go lw.flushEvery(interval)
	return lw
}

// Write buffers p; after Close it writes through, so a line logged late in
// the shutdown is never dropped.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.outMu.Lock()
		defer w.outMu.Unlock()
		return w.writeOut(p)
	}
	w.pending = append(w.pending, p...)
	n := len(w.pending)
	w.mu.Unlock()
	switch {
	case n >= maxPending:
		// The flusher is stuck behind a slow destination: wait for it.
		w.Flush()
	case n >= batchSize:
		select {
		case w.kick <- struct{}{}:
		default: // already asked
		}
	}
	return len(p), nil
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	return w.flushLocked()
}

// flushLocked writes the pending batch; the caller holds outMu.
func (w *Writer) flushLocked() error {
	w.mu.Lock()
	batch := w.pending
	w.pending, w.spare = w.spare[:0], nil
	w.mu.Unlock()
	if len(batch) == 0 {
		w.keepSpare(batch)
		return nil
	}
	_, err := w.writeOut(batch)
	w.keepSpare(batch)
	return err
}

// keepSpare keeps b for the next batch unless a burst made it large.
func (w *Writer) keepSpare(b []byte) {
	if cap(b) > 4*batchSize {
		return
	}
	w.mu.Lock()
	if w.spare == nil {
		w.spare = b[:0]
	}
	w.mu.Unlock()
}

// writeOut writes to the destination and keeps its first error; the caller
// holds outMu.
func (w *Writer) writeOut(p []byte) (int, error) {
	n, err := w.out.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// Close stops the periodic flush and writes everything buffered. Writes
// after Close go straight through. It returns the first write error met.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
		// Holding outMu while closing keeps a write that comes after Close
		// behind the last batch.
		w.outMu.Lock()
		defer w.outMu.Unlock()
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		w.flushLocked()
	})
	w.outMu.Lock()
	defer w.outMu.Unlock()
	return w.err
}

func (w *Writer) flushEvery(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-w.kick:
		}
		w.Flush()
	}
}
