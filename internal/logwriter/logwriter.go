// Package logwriter owns the buffering of tokengate's log output: log lines
// (one access line per request, above all) are gathered in memory and
// written in batches, so the hot path does not pay a write(2) per line. It
// knows nothing of log formats; it only guarantees that every line handed to
// it is written, in order, by Close at the latest (the serve command closes
// it after the graceful drain, so a SIGTERM loses no line).
package logwriter

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// DefaultInterval is how long a line may wait in the buffer: short enough
// that `kubectl logs -f` looks live, long enough to batch a busy second.
const DefaultInterval = 100 * time.Millisecond

// bufferSize bounds the memory held between flushes; a full buffer is
// written at once, whatever the interval.
const bufferSize = 64 << 10

// Writer is a goroutine-safe buffered io.Writer that flushes every interval
// and on Close. Each Write is kept whole: slog handlers write one record per
// call, so lines from concurrent requests never interleave.
type Writer struct {
	mu     sync.Mutex
	buf    *bufio.Writer
	err    error // the first write error of the destination, kept
	stop   chan struct{}
	done   chan struct{}
	closed bool
}

// New buffers w, flushing every interval (DefaultInterval when <= 0).
func New(w io.Writer, interval time.Duration) *Writer {
	if interval <= 0 {
		interval = DefaultInterval
	}
	lw := &Writer{buf: bufio.NewWriterSize(w, bufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go lw.flushEvery(interval)
	return lw
}

// Write buffers p; after Close it writes through, so a line logged late in
// the shutdown is never dropped.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if w.closed && err == nil {
		err = w.buf.Flush()
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if err := w.buf.Flush(); err != nil {
		if w.err == nil {
			w.err = err
		}
		return err
	}
	return nil
}

// Close stops the periodic flush and writes everything buffered. Writes
// after Close go straight through. It returns the first write error met.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.err
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
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
			w.mu.Lock()
			if w.buf.Buffered() > 0 {
				w.flushLocked()
			}
			w.mu.Unlock()
		}
	}
}
