package oauthclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client sends authenticated form POSTs to one kind of endpoint (an STS's
// token endpoint, an introspection endpoint). It never follows a redirect:
// a redirect would carry the credentials and the token elsewhere.
type Client struct {
	hc      *http.Client
	auth    ClientAuth
	now     func() time.Time
	server  string
	maxBody int64
}

// ClientOptions configure NewClient.
type ClientOptions struct {
	// HTTP is copied; the copy never follows redirects. Required.
	HTTP *http.Client
	// Auth authenticates each request. Required.
	Auth ClientAuth
	// Server names the server in errors ("sts").
	Server string
	// MaxBody bounds a response body (0 means 1 MiB).
	MaxBody int64
	// Clock is nil for time.Now.
	Clock func() time.Time
}

// NewClient returns a Client.
func NewClient(o ClientOptions) *Client {
	hc := *o.HTTP
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return &Client{hc: &hc, auth: o.Auth, now: o.Clock, server: o.Server, maxBody: o.MaxBody}
}

// Fingerprint is the client authentication's fingerprint.
func (c *Client) Fingerprint() string { return c.auth.Fingerprint() }

// Response is a 200 answer, its body read in full (bounded).
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Sent is when the request was sent: lifetimes such as expires_in count
	// from about then.
	Sent time.Time
}

// PostForm sends form to endpoint with the client authentication and
// Accept: accept, within ctx. A 200 answer is returned; anything else is an
// *Error: no answer (Status 0, Err the cause, never the URL's query or the
// body), another status (Code and Description from an RFC 6749 JSON error
// body), or an unreadable 200 body. retryAfter is the server's Retry-After
// on a non-200 answer, 0 when none.
func (c *Client) PostForm(ctx context.Context, endpoint string, form url.Values, accept string) (_ *Response, retryAfter time.Duration, _ error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("build %s request: %w", c.serverName(), err)
	}
	now := c.now()
	if err := c.auth.Apply(req, form, endpoint, now); err != nil {
		return nil, 0, err
	}
	// The body is set after client authentication has added its fields;
	// GetBody lets the transport resend it on a stale keep-alive connection.
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", accept)

	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, &Error{Server: c.server, Err: transportCause(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, RetryAfter(resp.Header.Get("Retry-After"), c.now()), c.parseError(resp)
	}
	b, err := ReadBody(resp.Body, c.maxBody)
	if err != nil {
		return nil, 0, &Error{Server: c.server, Status: resp.StatusCode, Description: "unreadable response", Err: err}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b, Sent: now}, 0, nil
}

func (c *Client) serverName() string {
	if c.server == "" {
		return "authorization server"
	}
	return c.server
}

// parseError turns a non-200 response into an *Error, reading the RFC 6749
// 5.2 error fields when the body is JSON. The body itself is never kept.
func (c *Client) parseError(resp *http.Response) *Error {
	e := &Error{Server: c.server, Status: resp.StatusCode}
	body, err := ReadBody(resp.Body, c.maxBody)
	if err != nil {
		e.Err = err
		return e
	}
	var er struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if JSONContentType(resp.Header) && json.Unmarshal(body, &er) == nil {
		e.Code = Sanitize(er.Error)
		e.Description = Sanitize(er.Description)
	}
	if e.Code == "" {
		e.Description = "no RFC 6749 error in the response"
	}
	return e
}

// RetryAfter reads a Retry-After header: seconds or an HTTP date; 0 when
// absent or unreadable.
func RetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
