package logjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// both logs r through Handler and through slog.JSONHandler.
func both(t testing.TB, r slog.Record) (got, want string) {
	t.Helper()
	var a, b bytes.Buffer
	if err := New(&a, slog.LevelDebug).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := slog.NewJSONHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug}).Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return a.String(), b.String()
}

func record(msg string, attrs ...slog.Attr) slog.Record {
	r := slog.NewRecord(time.Date(2026, 12, 2, 18, 11, 36, 123456789, time.UTC), slog.LevelInfo, msg, 0)
	r.AddAttrs(attrs...)
	return r
}

// accessAttrs are the attributes of a typical access line.
func accessAttrs() []slog.Attr {
	return []slog.Attr{
		slog.String("request_id", "0123456789abcdef"), slog.String("route", "orders"), slog.String("method", "GET"),
		slog.String("path", "/orders/1"), slog.Int("status", 200), slog.Float64("duration_ms", 1.234567),
		slog.String("client_ip", "127.0.0.1"), slog.String("user_agent", "curl/8.0"), slog.Int64("bytes_in", 0),
		slog.Int64("bytes_out", 28), slog.String("cache", "hit"), slog.Float64("upstream_duration_ms", 0.5),
	}
}

type valuer struct{}

func (valuer) LogValue() slog.Value { return slog.StringValue("resolved") }

// Every record is written exactly as slog.JSONHandler writes it, whether
// the fast path encodes it or hands it on.
func TestSameAsSlog(t *testing.T) {
	access := accessAttrs()
	cases := []struct {
		name string
		r    slog.Record
	}{
		{"access line", record("request", access...)},
		{"no attrs", record("started")},
		{"zero time", slog.NewRecord(time.Time{}, slog.LevelWarn, "w", 0)},
		{"monotonic time", slog.NewRecord(time.Now(), slog.LevelInfo, "now", 0)},
		{"other zone", slog.NewRecord(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 5400)), slog.LevelError, "e", 0)},
		{"custom level", slog.NewRecord(time.Unix(1, 0).UTC(), slog.LevelInfo+2, "l", 0)},
		{"escapes", record("q\"\\\n\r\t\x00\x1f\x7f<>&\u2028\u2029é\xff", slog.String("k\"\x01", "v\u2028\xc3"))},
		{"kinds", record("k", slog.Bool("b", true), slog.Uint64("u", math.MaxUint64), slog.Int64("i", math.MinInt64),
			slog.Duration("d", 1500*time.Millisecond), slog.Float64("f0", 0), slog.Float64("fneg0", math.Copysign(0, -1)),
			slog.Float64("fsmall", 1e-6), slog.Float64("fbig", 1e20), slog.Float64("fneg", -3.25))},
		{"exponent floats", record("f", slog.Float64("tiny", 1e-7), slog.Float64("huge", 1e21))},
		{"nan", record("f", slog.Float64("nan", math.NaN()), slog.Float64("inf", math.Inf(1)))},
		{"empty attr", record("e", slog.Attr{}, slog.Int("", 0), slog.String("", "x"))},
		{"valuer", record("v", slog.Any("v", valuer{}))},
		{"time attr", record("t", slog.Time("at", time.Unix(2, 3).UTC()))},
		{"any", record("a", slog.Any("err", errors.New("boom")), slog.Any("m", map[string]int{"a": 1}))},
		{"group", record("g", slog.Group("grp", slog.String("a", "b")), slog.Group("", slog.Int("inline", 1)))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, want := both(t, tc.r)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// The fast path takes the access line (no fallback to slog's handler).
func TestAccessLineIsEncodedHere(t *testing.T) {
	r := record("request", slog.String("route", "orders"), slog.Int("status", 200), slog.Float64("duration_ms", 0.75))
	if _, ok := appendRecord(nil, r); !ok {
		t.Fatal("the access line went to slog's handler")
	}
	for _, a := range []slog.Attr{slog.Float64("x", 1e-9), slog.Any("x", []int{1}), slog.Group("g", slog.Int("a", 1))} {
		if _, ok := appendRecord(nil, record("m", a)); ok {
			t.Errorf("%v was encoded here; slog encodes it differently", a)
		}
	}
}

func TestLevelAndDerived(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(New(&buf, slog.LevelWarn))
	l.Info("dropped")
	l.Warn("kept", "n", 1)
	l.With("component", "x").Error("derived", "e", "y")
	l.WithGroup("g").Warn("grouped", "k", "v")
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 || lines[0]["msg"] != "kept" || lines[1]["component"] != "x" || lines[2]["g"].(map[string]any)["k"] != "v" {
		t.Fatalf("lines %v", lines)
	}
}

// Lines from concurrent loggers, fast path and slog's, never interleave.
func TestConcurrentLinesWhole(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(New(&buf, nil))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				if i%2 == 0 {
					l.Info("fast", "s", strings.Repeat("x", 100))
				} else {
					l.Info("slow", "g", slog.GroupValue(slog.Int("a", 1)))
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, line := range lines {
		if !json.Valid([]byte(line)) {
			t.Fatalf("broken line %q", line)
		}
	}
}

func FuzzSameAsSlog(f *testing.F) {
	f.Add("request", "path", "/orders/1?\"x", int64(200), 1.5, true)
	f.Add("\xff\u2028", "", "\x00", int64(-1), 1e-7, false)
	f.Fuzz(func(t *testing.T, msg, key, s string, n int64, fl float64, b bool) {
		r := record(msg, slog.String(key, s), slog.Int64("n", n), slog.Float64("f", fl), slog.Bool("b", b), slog.String(s, key))
		got, want := both(t, r)
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	})
}

func BenchmarkAccessLine(b *testing.B) {
	attrs := accessAttrs()
	for _, h := range []struct {
		name string
		h    slog.Handler
	}{{"logjson", New(discard{}, nil)}, {"slog", slog.NewJSONHandler(discard{}, nil)}} {
		b.Run(h.name, func(b *testing.B) {
			l := slog.New(h.h)
			b.ReportAllocs()
			for b.Loop() {
				l.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
