package main

import (
	"io"
	"net"
	"net/http"
)

// otlpSink is an OTLP/HTTP receiver that accepts and discards every export,
// so -tracing measures what tracing costs tokengate, not a collector.
type otlpSink struct {
	srv *http.Server
	url string
}

func startOTLPSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &otlpSink{url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	})}
	go s.srv.Serve(ln)
	return s, nil
}

// baseURL is "" for a nil sink: tracing off.
func (s *otlpSink) baseURL() string {
	if s == nil {
		return ""
	}
	return s.url
}

func (s *otlpSink) close() { s.srv.Close() }
