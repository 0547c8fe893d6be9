package telemetry

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// failureLogInterval bounds how often a failing export is logged.
const failureLogInterval = time.Minute

// safeExporter is the last step before the wire: it redacts every span
// (whoever set its attributes: otelhttp, redisotel or tokengate), and it
// turns an export failure into a rate-limited log line, so a collector that
// is down never reaches a request and never floods the log. The batch is
// dropped; the next one is tried afresh.
type safeExporter struct {
	next   sdktrace.SpanExporter
	logger *slog.Logger

	mu      sync.Mutex
	lastLog time.Time
	dropped int
}

func newSafeExporter(next sdktrace.SpanExporter, logger *slog.Logger) *safeExporter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &safeExporter{next: next, logger: logger}
}

func (e *safeExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = redactSpan(s)
	}
	if err := e.next.ExportSpans(ctx, out); err != nil {
		e.failed(len(spans), err)
	}
	return nil
}

// failed logs the first failure, then at most one line a minute with the
// number of spans dropped since the last line.
func (e *safeExporter) failed(n int, err error) {
	e.mu.Lock()
	e.dropped += n
	now := time.Now()
	if !e.lastLog.IsZero() && now.Sub(e.lastLog) < failureLogInterval {
		e.mu.Unlock()
		return
	}
	dropped := e.dropped
	e.dropped, e.lastLog = 0, now
	e.mu.Unlock()
	e.logger.Warn("tracing: spans could not be exported and were dropped; requests are not affected",
		"spans_dropped", dropped, "error", err)
}

func (e *safeExporter) Shutdown(ctx context.Context) error {
	if err := e.next.Shutdown(ctx); err != nil {
		e.logger.Warn("tracing: exporter shutdown", "error", err)
	}
	return nil
}

// redactedSpan is a span with its attributes and events redacted; the rest
// is the original's.
type redactedSpan struct {
	sdktrace.ReadOnlySpan
	attrs  []attribute.KeyValue
	events []sdktrace.Event
}

func (s redactedSpan) Attributes() []attribute.KeyValue { return s.attrs }
func (s redactedSpan) Events() []sdktrace.Event         { return s.events }

func redactSpan(s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	events := s.Events()
	if len(events) > 0 {
		cp := make([]sdktrace.Event, len(events))
		for i, ev := range events {
			ev.Attributes = redactAttrs(ev.Attributes)
			cp[i] = ev
		}
		events = cp
	}
	return redactedSpan{ReadOnlySpan: s, attrs: redactAttrs(s.Attributes()), events: events}
}

// redactAttrs drops what may hold a credential or a query string: url.query,
// any header attribute of Authorization, Cookie or a token header, and a
// string that carries a Bearer or DPoP credential; url.full keeps only
// scheme, host and path.
func redactAttrs(in []attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(in))
	for _, kv := range in {
		key := string(kv.Key)
		switch {
		case key == "url.query" || key == "http.url" || key == "http.target":
			continue
		case strings.HasPrefix(key, "http.request.header.") || strings.HasPrefix(key, "http.response.header."):
			if sensitiveHeader(key[strings.LastIndexByte(key, '.')+1:]) {
				continue
			}
		case key == "url.full":
			kv = attribute.String(key, stripURL(kv.Value.AsString()))
		}
		if kv.Value.Type() == attribute.STRING && holdsCredential(kv.Value.AsString()) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func sensitiveHeader(name string) bool {
	switch strings.ToLower(name) {
	case "authorization", "proxy-authorization", "cookie", "set-cookie", "dpop", "txn-token":
		return true
	}
	return false
}

// holdsCredential reports a value with an Authorization scheme in it.
func holdsCredential(v string) bool {
	l := strings.ToLower(v)
	return strings.Contains(l, "bearer ") || strings.Contains(l, "dpop ")
}

// stripURL keeps a URL's scheme, host and path: no credentials, no query,
// no fragment. Unparseable, it is dropped to "".
func stripURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
}
