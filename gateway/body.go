package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// MaxBodyBytes bounds every request body the gateway reads itself (the token
// endpoint, POST /admin/revoke, the authz decision API). Proxied bodies are
// streamed and never bounded by it.
const MaxBodyBytes = 64 << 10

// Reasons of requests refused for their shape before any token is read. They
// are client errors: counted in tokengate_token_rejections_total and named
// in the access log, never mistaken for an upstream failure.
const (
	ReasonBody        = "body"        // a body too large, too slow or malformed
	ReasonPath        = "path"        // a path refused by checkPath or the fold rule
	ReasonCredentials = "credentials" // a token sent another way than Authorization
	ReasonMissing     = "missing"     // no credentials at all (401 with the realm challenge)
	ReasonOriginal    = "original"    // forward-auth original-request headers that disagree (authz.go)
)

// bodyError is a request body the gateway refuses: too large (413), too
// slow (408) or malformed (400). Its description never holds body bytes.
type bodyError struct {
	status      int
	description string
	err         error
}

func (e *bodyError) Error() string {
	if e.err == nil {
		return "request body: " + e.description
	}
	return "request body: " + e.description + ": " + e.err.Error()
}
func (e *bodyError) Unwrap() error { return e.err }

// response is the gateway's answer: invalid_request with the status, and
// the connection closed (a body that was cut off leaves it unusable, and a
// slow client must not keep it).
func (e *bodyError) response() response {
	return response{
		status: e.status, code: "invalid_request", description: e.description,
		reason: ReasonBody, closeConn: true,
	}
}

func bodyTooLarge(limit int64) *bodyError {
	return &bodyError{status: http.StatusRequestEntityTooLarge,
		description: "the request body is larger than " + strconv.FormatInt(limit, 10) + " bytes"}
}

// readBody reads a body the gateway consumes itself: at most limit bytes
// (never more than MaxBodyBytes), all of it within timeout. Every such body
// goes through here, so none can hold a worker: the connection's read
// deadline cuts a client that trickles its body, and the connection is
// closed after the error response. Errors are *bodyError (413, 408, 400),
// or *clientGoneError when the client hung up.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) ([]byte, error) {
	if limit <= 0 || limit > MaxBodyBytes {
		limit = MaxBodyBytes
	}
	if r.ContentLength > limit {
		return nil, bodyTooLarge(limit) // refused before a byte is read
	}
	rc := http.NewResponseController(w)
	// ErrNotSupported (a writer that cannot reach the connection, as in unit
	// tests with a recorder) leaves the server's own timeouts.
	deadline := timeout > 0 && rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		// The deadline stays: net/http would otherwise wait for the rest
		// of the body to reuse the connection, holding it after all.
		return nil, classifyBodyError(err, limit, timeout)
	}
	if deadline {
		// Keep-alive: the next request on the connection gets the
		// server's deadlines, not this one.
		_ = rc.SetReadDeadline(time.Time{})
	}
	return body, nil
}

// classifyBodyError names why reading a body failed.
func classifyBodyError(err error, limit int64, timeout time.Duration) error {
	var ne net.Error
	switch {
	case errors.As(err, new(*http.MaxBytesError)):
		return bodyTooLarge(limit)
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return &bodyError{status: http.StatusRequestTimeout, err: err,
			description: "the request body did not arrive within " + timeout.String()}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		return &clientGoneError{err: fmt.Errorf("read request body: %w", err)}
	default:
		return malformedBody(err)
	}
}

func malformedBody(err error) *bodyError {
	return &bodyError{status: http.StatusBadRequest, err: err,
		description: "the request body is malformed (bad chunked encoding?)"}
}

// bufferBody reads r's body through readBody and puts the bytes back as
// r.Body, for handlers that decode from r.Body (admin).
func bufferBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) error {
	body, err := readBody(w, r, limit, timeout)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}

// recordingBody wraps a proxied request body and remembers the first error
// reading it from the client. The transport reports such an error as a
// failed round trip; the gateway asks the body whose fault it was, so a
// client's broken body is a 400, never a 502 (upstreamFailed).
type recordingBody struct {
	io.ReadCloser
	mu  sync.Mutex
	err error
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// readErr is the client-side read error, nil if reading never failed.
func (b *recordingBody) readErr() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// bodyProbeWindow is how long a chunked HTTP/1.x body may take to show its
// first chunk before the upstream request starts regardless. Bytes that
// arrived with the headers are parsed at once, so a body broken from its
// first chunk is refused before anything is forwarded.
const bodyProbeWindow = 50 * time.Millisecond

// watchBody wraps the body of a request about to be proxied in a
// recordingBody and, for a chunked HTTP/1.x body, probes its first read
// (like net/http's transport does for GET bodies): an error there is
// returned at once and nothing is forwarded. A body that is merely slow
// keeps streaming: the probe's result is handed to the first Read.
func watchBody(r *http.Request) (*recordingBody, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body := r.Body
	if r.ProtoMajor == 1 && r.ContentLength < 0 && r.Header.Get("Expect") == "" {
		p := &probedBody{ReadCloser: body, done: make(chan struct{})}
		go p.probe()
		t := time.NewTimer(bodyProbeWindow)
		select {
		case <-p.done:
			t.Stop()
			if p.err != nil && p.err != io.EOF && p.n == 0 {
				return nil, malformedBody(p.err)
			}
		case <-t.C:
		}
		body = p
	}
	rb := &recordingBody{ReadCloser: body}
	r.Body = rb
	return rb, nil
}

// probedBody is a body whose first Read ran ahead (watchBody).
type probedBody struct {
	io.ReadCloser
	done chan struct{}
	buf  [512]byte
	n    int
	off  int
	err  error
	used bool // the probe's bytes and error have been returned
}

func (p *probedBody) probe() {
	p.n, p.err = p.ReadCloser.Read(p.buf[:])
	close(p.done)
}

func (p *probedBody) Read(b []byte) (int, error) {
	if !p.used {
		<-p.done
		if p.off < p.n {
			n := copy(b, p.buf[p.off:p.n])
			p.off += n
			return n, nil
		}
		p.used = true
		if p.err != nil {
			return 0, p.err
		}
	}
	return p.ReadCloser.Read(b)
}

// writeBodyError answers a readBody failure on the admin listener: the
// same status and JSON shape as the edge (writeResponse), nothing for a
// client that hung up.
func writeBodyError(w http.ResponseWriter, err error) {
	var be *bodyError
	if !errors.As(err, &be) {
		return // client gone: nobody to answer
	}
	writeResponse(w, be.response())
}
