package oauthclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ReadBody reads at most limit bytes of r; more is an error, so a broken or
// hostile server cannot make tokengate buffer without bound.
func ReadBody(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response body larger than %d bytes", limit)
	}
	return b, nil
}

// drainLimit is how much of an unwanted body is read so the connection can
// be reused.
const drainLimit = 4 << 10

// drain reads a little of an unwanted body and closes it.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainLimit))
	_ = body.Close()
}

// JSONContentType accepts what servers send for JSON: application/json,
// any +json type, text/json, with any parameters, or no Content-Type at all.
// A login page or a proxy's HTML error page is refused.
func JSONContentType(h http.Header) bool {
	ct := h.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// Get fetches uri (Accept: application/json) within timeout (0: the
// caller's context only) and returns its body, at most limit bytes. Only 200
// succeeds: another status is an *Error with that Status. Redirects follow
// client's policy: metadata and key sets carry no credentials.
func Get(ctx context.Context, client *http.Client, uri string, limit int64, timeout time.Duration) ([]byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, transportCause(err))
	}
	if resp.StatusCode != http.StatusOK {
		drain(resp.Body)
		// The text keeps the words operators grep logs for.
		return nil, &Error{Server: "GET " + uri, Status: resp.StatusCode, Description: fmt.Sprintf("unexpected status %d", resp.StatusCode)}
	}
	defer resp.Body.Close()
	body, err := ReadBody(resp.Body, limit)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", uri, err)
	}
	return body, nil
}

// transportCause strips *url.Error's wrapping: its text repeats the method
// and URL, which the caller's message already names.
func transportCause(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
