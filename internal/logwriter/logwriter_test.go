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
