package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// statusWriter records the status written through it for metrics and the
// access log. It passes Flush and Hijack through (streaming, WebSocket) and
// unwraps for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
	written  int64 // body bytes written (bytes_out)
	// grpcStatus is the grpc-status of the gateway's own gRPC error
	// (writeGRPCError), "" otherwise.
	grpcStatus string
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx are interim: the final status is still to come.
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// writeDecided records decided as the response's status while writing wire
// on the connection: a gRPC error is HTTP 200 on the wire, but metrics and
// the access log count the HTTP status the gateway decided.
func (w *statusWriter) writeDecided(decided, wire int) {
	if w.status == 0 {
		w.status = decided
	}
	w.ResponseWriter.WriteHeader(wire)
}

// Flush sends buffered data to the client (streaming responses).
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over for a protocol switch; ReverseProxy
// writes the 101 itself on the hijacked connection.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
	}
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// started reports whether a response (or a protocol switch) has begun, after
// which no error response can be written.
func (w *statusWriter) started() bool { return w.status != 0 || w.hijacked }

// silent records a status that is never written (the client is gone).
func (w *statusWriter) silent(code int) {
	if w.status == 0 {
		w.status = code
	}
}

// code is the status to report: what was written, or 200 when the handler
// wrote nothing (net/http's default).
func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// countingBody counts the bytes read from a request body, whoever reads it
// (the token endpoint, the upstream transport's copy): the access log's
// bytes_in. Atomic: an HTTP/2 transport may still be reading while the
// handler returns.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// count is the bytes read so far; 0 for a request without a body (nil).
func (b *countingBody) count() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}
