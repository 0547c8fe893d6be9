package oauthtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

// Call is one request a fake endpoint received.
type Call struct {
	Method string
	Path   string
	Header http.Header
	// Form is the parsed POST form.
	Form url.Values
}

// Handler answers the n-th call (1-based) to a fake endpoint; r.PostForm is
// parsed.
type Handler func(w http.ResponseWriter, r *http.Request, n int)

// formServer is an httptest server that records every form POST to path
// and answers with a handler the test can swap.
type formServer struct {
	srv  *httptest.Server
	path string

	mu     sync.Mutex
	handle Handler
	calls  []Call
	// extra answers other paths (metadata); nil for 404.
	extra http.HandlerFunc
}

func newFormServer(t testing.TB, path string, handle Handler) *formServer {
	t.Helper()
	s := &formServer{path: path, handle: handle}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *formServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.path {
		s.mu.Lock()
		extra := s.extra
		s.mu.Unlock()
		if extra != nil {
			extra(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		JSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: r.PostForm})
	n, handle := len(s.calls), s.handle
	s.mu.Unlock()
	handle(w, r, n)
}

// SetHandler replaces the answer of the following calls.
func (s *formServer) SetHandler(h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handle = h
}

// Calls lists the calls received so far.
func (s *formServer) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// URL is the server's base URL.
func (s *formServer) URL() string { return s.srv.URL }

// JSON writes v as a JSON response with status.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Close takes the server down: later calls are refused.
func (s *formServer) Close() { s.srv.Close() }

// Client is an HTTP client for the server.
func (s *formServer) Client() *http.Client { return s.srv.Client() }
