package gateway

import (
	"cmp"
	"net/http"
	"strconv"
	"strings"
)

// gRPC status codes the gateway answers with (google.golang.org/grpc/codes).
const (
	grpcUnknown           = 2
	grpcInvalidArgument   = 3
	grpcDeadlineExceeded  = 4
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// headerGRPCStatus and headerGRPCMessage end every gRPC response.
const (
	headerGRPCStatus  = "Grpc-Status"
	headerGRPCMessage = "Grpc-Message"
)

// isGRPC reports whether r is a gRPC call: content-type application/grpc,
// alone or with a +codec suffix or parameters. gRPC-Web
// (application/grpc-web*) is ordinary HTTP to the gateway.
func isGRPC(r *http.Request) bool {
	const grpcType = "application/grpc"
	ct := r.Header.Get("Content-Type")
	if len(ct) < len(grpcType) || !strings.EqualFold(ct[:len(grpcType)], grpcType) {
		return false // no allocation on the common path
	}
	rest := ct[len(grpcType):]
	return rest == "" || rest[0] == '+' || rest[0] == ';'
}

// grpcCode maps the HTTP status the gateway decided to the gRPC status a
// gRPC client is told.
func grpcCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return grpcInvalidArgument
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound:
		return grpcUnimplemented
	case http.StatusTooManyRequests:
		return grpcResourceExhausted
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return grpcUnavailable
	case http.StatusGatewayTimeout:
		return grpcDeadlineExceeded
	default:
		return grpcUnknown
	}
}

// writeGRPCError answers a gRPC call with the gateway's own error: a
// trailers-only response (HTTP 200, one HEADERS frame ending the stream)
// whose grpc-status and grpc-message say what resp says. The challenge,
// Retry-After and DPoP headers travel in the same frame, where gRPC
// clients read them as trailer metadata. Nothing is flushed and no body is
// written, so net/http sends the headers with END_STREAM when the handler
// returns. The HTTP status decided (resp.status) is what the status writer
// records for metrics and the access log.
func writeGRPCError(w *statusWriter, resp response) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/grpc")
	h.Set("Cache-Control", "no-store")
	if resp.challenge != "" {
		h.Set("WWW-Authenticate", resp.challenge)
	}
	if resp.extraChallenge != "" {
		h.Add("WWW-Authenticate", resp.extraChallenge)
	}
	if resp.dpopNonce != "" {
		h.Set(headerDPoPNonce, resp.dpopNonce)
	}
	if resp.closeConn {
		// A body cut off leaves an HTTP/1.1 connection unusable; over
		// HTTP/2 net/http turns this into a graceful GOAWAY.
		h.Set("Connection", "close")
	}
	if resp.retryAfter {
		h.Set("Retry-After", cmp.Or(resp.retryAfterValue, retryAfterSeconds))
	}
	code := grpcCode(resp.status)
	h.Set(headerGRPCStatus, strconv.Itoa(code))
	msg := resp.code
	if resp.description != "" {
		msg += ": " + resp.description
	}
	h.Set(headerGRPCMessage, grpcEncodeMessage(msg))
	w.grpcStatus = strconv.Itoa(code)
	w.writeDecided(resp.status, http.StatusOK)
}

// grpcEncodeMessage percent-encodes a grpc-message as the gRPC HTTP/2
// protocol says: every byte outside printable ASCII (0x20-0x7E), and '%'
// itself, becomes %XX (upper-case hex) of the UTF-8 encoding.
func grpcEncodeMessage(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0f])
	}
	return b.String()
}

// grpcStatusOf is the grpc-status of a response for the access log: the
// gateway's own (writeGRPCError), else the upstream's, sent as a header
// (trailers-only) or as a trailer (ReverseProxy copies undeclared trailers
// under http.TrailerPrefix). "" when the response carries none.
func grpcStatusOf(w *statusWriter) string {
	if w.grpcStatus != "" {
		return w.grpcStatus
	}
	h := w.Header()
	if v := h.Get(headerGRPCStatus); v != "" {
		return v
	}
	return h.Get(http.TrailerPrefix + headerGRPCStatus)
}
