// Package logjson owns the encoding of tokengate's JSON log lines: a
// slog.Handler that writes exactly what slog.JSONHandler writes, byte for
// byte, but encodes the records of the hot path (one access line per
// request, made of strings, integers, booleans and durations in float
// milliseconds) by appending to a pooled buffer, without the reflection and
// json.Marshal calls slog's handler makes for every record (a float64 goes
// through encoding/json there). Any record it does not encode exactly (a
// group, a value of another kind, a float that encoding/json would write in
// exponent form, a handler derived with WithAttrs or WithGroup) is handed to
// an inner slog.JSONHandler over the same writer, so the output is always
// slog's. It knows nothing of what is logged.
package logjson

import (
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Handler is a slog.Handler producing slog.JSONHandler's output.
type Handler struct {
	w     *lockedWriter
	level slog.Leveler
	inner *slog.JSONHandler
}

// New returns a handler writing one JSON line per record to w, for records
// at level or above (nil: slog.LevelInfo). Each line is one Write call.
func New(w io.Writer, level slog.Leveler) *Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	lw := &lockedWriter{w: w}
	return &Handler{w: lw, level: level, inner: slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: level})}
}

// lockedWriter serialises the lines of the fast path and of the inner
// handler (which locks only its own writes).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Enabled reports whether records at level are written.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

// WithAttrs and WithGroup return slog's own handler: derived loggers are
// not on the hot path.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler { return h.inner.WithAttrs(attrs) }
func (h *Handler) WithGroup(name string) slog.Handler       { return h.inner.WithGroup(name) }

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Handle writes r as one line.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	bp := buffers.Get().(*[]byte)
	buf, ok := appendRecord((*bp)[:0], r)
	var err error
	if ok {
		_, err = h.w.Write(buf)
	} else {
		err = h.inner.Handle(ctx, r)
	}
	if cap(buf) <= 64<<10 { // do not keep one huge line's buffer
		*bp = buf
		buffers.Put(bp)
	}
	return err
}

// appendRecord appends r as slog.JSONHandler writes it, or reports false
// when r holds something it does not encode exactly as slog does.
func appendRecord(buf []byte, r slog.Record) ([]byte, bool) {
	buf = append(buf, '{')
	if !r.Time.IsZero() {
		t := r.Time.Round(0) // slog drops the monotonic reading too
		if y := t.Year(); y < 0 || y >= 10000 {
			return buf, false
		}
		buf = append(buf, `"time":"`...)
		buf = t.AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, `",`...)
	}
	buf = append(buf, `"level":"`...)
	buf = append(buf, r.Level.String()...)
	buf = append(buf, `","msg":`...)
	buf = appendString(buf, r.Message)
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		buf, ok = appendAttr(buf, a)
		return ok
	})
	if !ok {
		return buf, false
	}
	return append(buf, "}\n"...), true
}

// appendAttr appends `,"key":value` for the kinds encoded here.
func appendAttr(buf []byte, a slog.Attr) ([]byte, bool) {
	v := a.Value.Resolve()
	if a.Key == "" && v.Any() == nil {
		return buf, true // slog drops an empty attribute
	}
	switch v.Kind() {
	case slog.KindString, slog.KindInt64, slog.KindUint64, slog.KindBool, slog.KindDuration:
	case slog.KindFloat64:
		if !plainFloat(v.Float64()) {
			return buf, false
		}
	default: // groups, times, any: slog's own handler
		return buf, false
	}
	buf = append(buf, ',')
	buf = appendString(buf, a.Key)
	buf = append(buf, ':')
	switch v.Kind() {
	case slog.KindString:
		buf = appendString(buf, v.String())
	case slog.KindInt64:
		buf = strconv.AppendInt(buf, v.Int64(), 10)
	case slog.KindUint64:
		buf = strconv.AppendUint(buf, v.Uint64(), 10)
	case slog.KindBool:
		buf = strconv.AppendBool(buf, v.Bool())
	case slog.KindDuration:
		buf = strconv.AppendInt(buf, int64(v.Duration()), 10)
	case slog.KindFloat64:
		buf = strconv.AppendFloat(buf, v.Float64(), 'f', -1, 64)
	}
	return buf, true
}

// plainFloat reports whether encoding/json writes f in plain decimal form,
// which is then exactly strconv's shortest 'f' form.
func plainFloat(f float64) bool {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return false
	}
	abs := math.Abs(f)
	return abs == 0 || (abs >= 1e-6 && abs < 1e21)
}

// appendString appends s as a JSON string, escaped as slog escapes it:
// quote, backslash and control characters; invalid UTF-8 as U+FFFD; U+2028
// and U+2029 as \u escapes. HTML characters are not escaped.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch b {
			case '"', '\\':
				buf = append(buf, '\\', b)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\u202`...)
			buf = append(buf, hex[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

const hex = "0123456789abcdef"
