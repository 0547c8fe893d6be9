package gateway

import (
	"net/http"
	"testing"
)

func TestGRPCCode(t *testing.T) {
	tests := []struct{ status, code int }{
		{400, 3}, {401, 16}, {403, 7}, {404, 12}, {429, 8},
		{502, 14}, {503, 14}, {504, 4}, {405, 2}, {408, 2}, {413, 2}, {500, 2},
	}
	for _, tc := range tests {
		if got := grpcCode(tc.status); got != tc.code {
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
