package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// bigBody is the size of the streaming scenario's response.
const bigBody = 1 << 20

// backend is the echo upstream: a small JSON answer, or 1 MiB streamed in
// 32 KiB flushed chunks for paths ending in /big.
type backend struct {
	url string
	srv *http.Server
	// grpcURL is the gRPC-shaped upstream (cleartext HTTP/2) of the grpc
	// scenario, as an http:// URL.
	grpcURL string
	grpcSrv *http.Server
}

func newBackend() (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("backend listen: %w", err)
	}
	chunk := []byte(strings.Repeat("x", 32<<10))
	small := []byte(`{"ok":true,"backend":"echo"}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/big") {
			w.Header().Set("Content-Type", "application/octet-stream")
			fl, _ := w.(http.Flusher)
			for sent := 0; sent < bigBody; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				if fl != nil {
					fl.Flush()
				}
			}
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(small)
	})
	b := &backend{url: "http://" + ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	go b.srv.Serve(ln)
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.close()
		return nil, fmt.Errorf("gRPC backend listen: %w", err)
	}
	b.grpcURL = "http://" + gln.Addr().String()
	b.grpcSrv = &http.Server{Handler: grpcUnaryHandler(), ReadHeaderTimeout: 5 * time.Second, Protocols: h2cProtocols()}
	go b.grpcSrv.Serve(gln)
	return b, nil
}

func (b *backend) close() {
	b.srv.Close()
	if b.grpcSrv != nil {
		b.grpcSrv.Close()
	}
}

// grpcReply is one length-prefixed gRPC message (uncompressed, 28 bytes).
var grpcReply = append([]byte{0, 0, 0, 0, 28}, []byte(`{"ok":true,"backend":"grpc"}`)...)

// grpcUnaryHandler answers every call the way a gRPC server answers a
// unary call on the wire: content-type application/grpc, one message, and
// grpc-status 0 in the trailers (not announced, as gRPC servers do).
func grpcUnaryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Write(grpcReply)
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	})
}

// h2cProtocols are HTTP/1.1 and cleartext HTTP/2 with prior knowledge, as
// tokengate's edge listener speaks them.
func h2cProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}
