package gateway

import (
	"net/http"
	"net/http/httputil"
	"time"
)

// UpstreamTransport returns a transport tuned exactly as the gateway's own
// upstream transports are (connection pool sizes, timeouts). The load
// benchmark gives it to the bare reverse proxy it compares tokengate with,
// so the comparison measures the gateway's work and not a tuning difference.
func UpstreamTransport(timeout time.Duration) *http.Transport { return newTransport(timeout) }

// NewBufferPool returns a pool of 32 KiB copy buffers like the one the
// gateway's proxies share, for the same reason as UpstreamTransport.
func NewBufferPool() httputil.BufferPool { return &bufferPool{} }
