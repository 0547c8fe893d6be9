package gateway

import (
	"crypto/rand"
	"net/http"
)

const (
	headerRequestID = "X-Request-Id"
	// maxRequestIDLen bounds a client-sent request id, which ends up in logs
	// and upstream headers.
	maxRequestIDLen = 128
)

// requestID returns the client's X-Request-Id when there is exactly one and
// it is sane (1 to 128 printable ASCII characters, no spaces), else a new
// random one.
func requestID(h http.Header) string {
	if v := h[headerRequestID]; len(v) == 1 && saneRequestID(v[0]) {
		return v[0]
	}
	return rand.Text()
}

func saneRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
