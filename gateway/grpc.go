package gateway

import (
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
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
// gRPC client is told (contract section 10).
func grpcCode(status int) codes.Code {
	switch status {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.Unimplemented
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	default:
		return codes.Unknown
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
	resp.metaHeaders(h)
	code := grpcCode(resp.status)
	h.Set(headerGRPCStatus, strconv.Itoa(int(code)))
	msg := resp.code
	if resp.description != "" {
		msg += ": " + resp.description
	}
	h.Set(headerGRPCMessage, grpcEncodeMessage(msg))
	w.grpcStatus = strconv.Itoa(int(code))
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
