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
	return b, nil
}

func (b *backend) close() { b.srv.Close() }
