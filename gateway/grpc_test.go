package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestGRPCCode(t *testing.T) {
	tests := []struct{ status, code int }{
		{400, 3}, {401, 16}, {403, 7}, {404, 12}, {429, 8},
		{502, 14}, {503, 14}, {504, 4}, {405, 2}, {408, 2}, {413, 2}, {500, 2},
	}
	for _, tc := range tests {
		if got := grpcCode(tc.status); int(got) != tc.code {
			t.Errorf("grpcCode(%d) = %d, want %d", tc.status, got, tc.code)
		}
	}
}

func TestGRPCEncodeMessage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text: ok", "plain text: ok"},
		{"100%", "100%25"},
		{"a\nb\tc", "a%0Ab%09c"},
		{"ünï", "%C3%BCn%C3%AF"},
		{"\x7f~", "%7F~"},
	}
	for _, tc := range tests {
		if got := grpcEncodeMessage(tc.in); got != tc.want {
			t.Errorf("grpcEncodeMessage(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsGRPC(t *testing.T) {
	tests := []struct {
		ct   string
		want bool
	}{
		{"application/grpc", true},
		{"application/grpc+proto", true},
		{"Application/GRPC; charset=utf-8", true},
		{"application/grpc-web", false},
		{"application/grpc-web+proto", false},
		{"application/grpcx", false},
		{"application/json", false},
		{"", false},
	}
	for _, tc := range tests {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Content-Type", tc.ct)
		if got := isGRPC(r); got != tc.want {
			t.Errorf("isGRPC(%q) = %v, want %v", tc.ct, got, tc.want)
		}
	}
}

// TestGRPCMalformedBodyClosesConnection: a gRPC-typed request whose
// chunked body is broken (HTTP/1.1) gets its gRPC error and the connection
// closed, as the JSON answer does: nothing more is read from it.
func TestGRPCMalformedBodyClosesConnection(t *testing.T) {
	env, api := bodyEnv(t, time.Second)
	addr := strings.TrimPrefix(env.edge.URL, "http://")
	resp, body := sendRaw(t, addr, "POST /api/upload HTTP/1.1\r\nHost: edge.example\r\nAuthorization: Bearer "+umbrella+
		"\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != "3" || body != "" {
		t.Fatalf("status %d grpc-status %q body %q, want 200, 3 and no body", resp.StatusCode, resp.Header.Get("Grpc-Status"), body)
	}
	if !resp.Close {
		t.Error("the connection was not closed after a broken body")
	}
	if len(api.requests()) != 0 {
		t.Error("a broken body was forwarded")
	}
	if got := testutil.ToFloat64(env.metrics.Requests.WithLabelValues("api", "400")); got != 1 {
		t.Errorf("requests{code=400} = %v, want 1 (the HTTP status decided)", got)
	}
}
