package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	"github.com/tokengate/tokengate/config"
)

// TestEndpointSelection: the key wins over the OTEL_* variables; without
// the key, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (a full URL) or
// OTEL_EXPORTER_OTLP_ENDPOINT (a base URL, + /v1/traces) is used; neither
// is tracing off, and so is OTEL_SDK_DISABLED=true. Each case exports one
// span to a real receiver and checks the path it arrived at.
func TestEndpointSelection(t *testing.T) {
	var hits atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hits.Store(r.URL.Path)
	}))
	defer srv.Close()
	tests := []struct {
		name     string
		key      string
		env      map[string]string
		wantOn   bool
		wantPath string
	}{
		{"neither", "", nil, false, ""},
		{"key", srv.URL + "/base", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, true, "/base/v1/traces"},
		{"base variable", "", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL + "/otlp"}, true, "/otlp/v1/traces"},
		{"traces variable", "", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": srv.URL + "/exact",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, true, "/exact"},
		{"disabled", srv.URL, map[string]string{"OTEL_SDK_DISABLED": "true"}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"} {
				t.Setenv(k, tc.env[k])
			}
			hits.Store("")
			p, err := New(context.Background(), config.Tracing{OTLPEndpoint: tc.key, SampleRatio: 1, ServiceName: "t"}, nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Enabled() != tc.wantOn {
				t.Fatalf("Enabled = %v, want %v", p.Enabled(), tc.wantOn)
			}
			_, span := p.Tracer().Start(context.Background(), "x")
			span.End()
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := hits.Load().(string); got != tc.wantPath {
				t.Errorf("spans sent to %q, want %q", got, tc.wantPath)
			}
		})
	}
}

// TestRedactAttrs: url.full loses its query, fragment and credentials;
// url.query, credential headers and any Bearer/DPoP value are dropped.
func TestRedactAttrs(t *testing.T) {
	in := []attribute.KeyValue{
		attribute.String("url.full", "https://user:pw@sts.example/token?code=secret#frag"),
		attribute.String("url.query", "code=secret"),
		attribute.String("url.path", "/orders/1"),
		attribute.StringSlice("http.request.header.authorization", []string{"Bearer x"}),
		attribute.String("http.request.header.x-custom", "Bearer abc"),
		attribute.String("note", "dpop eyJ..."),
		attribute.Int("http.response.status_code", 200),
	}
	got := map[string]string{}
	for _, kv := range redactAttrs(in) {
		got[string(kv.Key)] = kv.Value.String()
	}
	want := map[string]string{
		"url.full": "https://sts.example/token", "url.path": "/orders/1", "http.response.status_code": "200",
	}
	if len(got) != len(want) {
		t.Errorf("redacted = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
