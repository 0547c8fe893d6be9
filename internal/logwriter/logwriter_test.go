package logwriter

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a destination safe to read while the flusher writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int // Write calls
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestCloseWritesEveryLineInOrder: lines written from many goroutines all
// reach the destination whole, none interleaved, by Close; and in far fewer
// writes than lines (the point of buffering).
func TestCloseWritesEveryLineInOrder(t *testing.T) {
	dst := &syncBuffer{}
	w := New(dst, time.Hour) // only Close and a full buffer flush
	const goroutines, lines = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "{\"g\":%d,\"i\":%d,\"pad\":%q}\n", g, i, strings.Repeat("x", 40))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(dst.String(), "\n"), "\n")
	if len(got) != goroutines*lines {
		t.Fatalf("%d lines written, want %d", len(got), goroutines*lines)
	}
	next := make([]int, goroutines)
	for _, line := range got {
		var g, i int
		if _, err := fmt.Sscanf(line, "{\"g\":%d,\"i\":%d,", &g, &i); err != nil {
			t.Fatalf("a line was torn: %q", line)
		}
		if i != next[g] {
			t.Fatalf("goroutine %d: line %d after %d", g, i, next[g]-1)
		}
		next[g]++
	}
	if n := dst.writes(); n >= goroutines*lines/10 {
		t.Errorf("%d writes for %d lines: not batched", n, goroutines*lines)
	}
}

// TestFlushesWithinTheInterval: a lone line reaches the destination without
// Close, on the periodic flush.
func TestFlushesWithinTheInterval(t *testing.T) {
	dst := &syncBuffer{}
	w := New(dst, 5*time.Millisecond)
	defer w.Close()
	fmt.Fprintln(w, "one line")
	deadline := time.Now().Add(10 * time.Second)
	for dst.String() != "one line\n" {
		if time.Now().After(deadline) {
			t.Fatalf("not flushed: %q", dst.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestWritesAfterCloseGoThrough: a line logged after Close (late in the
// shutdown) is written at once, not kept in a buffer nobody flushes.
func TestWritesAfterCloseGoThrough(t *testing.T) {
	dst := &syncBuffer{}
	w := New(dst, time.Hour)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w, "late")
	if dst.String() != "late\n" {
		t.Fatalf("after Close: %q", dst.String())
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestCloseReportsTheWriteError: a destination that fails is reported.
func TestCloseReportsTheWriteError(t *testing.T) {
	w := New(failing{}, time.Hour)
	fmt.Fprintln(w, "x")
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close = %v, want the destination's error", err)
	}
}

// blocked is a destination that holds every write until released, as a
// full pipe or a disk throttling writeback does.
type blocked struct {
	syncBuffer
	entered chan struct{}
	release chan struct{}
}

func (b *blocked) Write(p []byte) (int, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return b.syncBuffer.Write(p)
}

// TestSlowDestinationDoesNotBlockWriters: while the flusher waits on the
// destination, lines are still taken at once (a request never waits behind
// another's write(2)); nothing is lost once the destination drains.
func TestSlowDestinationDoesNotBlockWriters(t *testing.T) {
	dst := &blocked{entered: make(chan struct{}, 1), release: make(chan struct{})}
	w := New(dst, time.Millisecond)
	fmt.Fprintln(w, "first")
	<-dst.entered // the flusher is now stuck in the destination's Write
	const lines = 1000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range lines {
			fmt.Fprintf(w, "line %d\n", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writers waited for the blocked destination")
	}
	close(dst.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(dst.String(), "\n"), "\n")
	if len(got) != lines+1 || got[0] != "first" || got[lines] != fmt.Sprintf("line %d", lines-1) {
		t.Fatalf("%d lines, first %q, last %q", len(got), got[0], got[len(got)-1])
	}
}

func (w *Writer) pendingLen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// TestBackPressureBeyondMaxPending: a destination that stays blocked makes
// writers wait once maxPending is buffered, rather than grow without bound.
func TestBackPressureBeyondMaxPending(t *testing.T) {
	dst := &blocked{entered: make(chan struct{}, 1), release: make(chan struct{})}
	w := New(dst, time.Millisecond)
	fmt.Fprintln(w, "first")
	<-dst.entered
	line := []byte(strings.Repeat("x", 1023) + "\n")
	wrote := make(chan int, 1)
	go func() {
		n := 0
		for n < 2*maxPending/len(line) {
			w.Write(line)
			n++
		}
		wrote <- n
	}()
	// The buffer grows to the bound and no further: the Write that crosses
	// it waits for the destination before the next line is taken.
	deadline := time.Now().Add(30 * time.Second)
	for w.pendingLen() < maxPending {
		if time.Now().After(deadline) {
			t.Fatalf("the buffer never reached maxPending: %d", w.pendingLen())
		}
		time.Sleep(time.Millisecond)
	}
	if n := w.pendingLen(); n >= maxPending+len(line) {
		t.Fatalf("%d bytes buffered, bound %d", n, maxPending)
	}
	select {
	case n := <-wrote:
		t.Fatalf("all %d lines were taken while the destination was blocked", n)
	default:
	}
	close(dst.release)
	if n := <-wrote; n != 2*maxPending/len(line) {
		t.Fatalf("%d lines written", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(dst.String(), "\n"); got != 1+2*maxPending/len(line) {
		t.Fatalf("%d lines reached the destination", got)
	}
}
