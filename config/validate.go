package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Validate checks the whole configuration and returns every problem it
// finds, each a *FieldError whose message names what is wrong and the fix,
// joined with errors.Join in document order; nil when there is none. It
// changes nothing; it only looks at files (exist, readable) that the
// configuration names.
func (c *Config) Validate() error {
	return c.validate().join()
}

func (c *Config) validate() problems {
	v := &validator{c: c}
	v.server()
	v.log()
	v.issuers()
	v.introspection()
	v.exchange()
	v.cache()
	v.routes()
	v.txnToken()
	v.cors()
	v.authz()
	v.tracing()
	return v.probs
}

// validator collects problems; each section of the file has its own method.
type validator struct {
	c     *Config
	probs problems
}

func (v *validator) add(path, msg string) {
	v.probs.add(v.c.order(path), path, msg)
}

func (v *validator) addf(path, format string, args ...any) {
	v.add(path, fmt.Sprintf(format, args...))
}

// Server limits.
const (
	minMaxTokenBytes  = 256
	maxMaxTokenBytes  = 1 << 20
	minMaxHeaderBytes = 1024
	maxMaxHeaderBytes = 16 << 20
)

func (v *validator) server() {
	s := v.c.Server
	listenOK := v.listenAddress("server.listen", s.Listen, DefaultListen)
	adminOK := v.listenAddress("server.admin_listen", s.AdminListen, DefaultAdminListen)
	if listenOK && adminOK && sameAddress(s.Listen, s.AdminListen) {
		v.addf("server.admin_listen", "%s is the same address as server.listen (%s): the admin listener "+
			"(metrics, health, JWKS) needs its own port, like %s", quote(s.AdminListen), quote(s.Listen), DefaultAdminListen)
	}
	if p := s.TokenEndpointPath; p != nil && *p != "" {
		switch {
		case !strings.HasPrefix(*p, "/"):
			v.addf("server.token_endpoint_path", `%s does not start with "/": write it like %s, or "" to disable the endpoint`,
				quote(*p), DefaultTokenEndpointPath)
		case strings.ContainsAny(*p, "?#") || hasSpaceOrControl(*p):
			v.addf("server.token_endpoint_path", `%s is not a plain path: write it like %s, without a query, a fragment or spaces`,
				quote(*p), DefaultTokenEndpointPath)
		default:
			if msg := tokenEndpointPathProblem(*p); msg != "" {
				v.add("server.token_endpoint_path", msg)
			}
		}
	}
	v.publicURL()
	v.trustedProxies()
	v.dpop()
	tokenOK := s.MaxTokenBytes >= minMaxTokenBytes && s.MaxTokenBytes <= maxMaxTokenBytes
	if !tokenOK {
		v.addf("server.max_token_bytes", "%d is out of range: use %d to %d (default %d)",
			s.MaxTokenBytes, minMaxTokenBytes, maxMaxTokenBytes, DefaultMaxTokenBytes)
	}
	switch {
	case s.MaxHeaderBytes < minMaxHeaderBytes || s.MaxHeaderBytes > maxMaxHeaderBytes:
		v.addf("server.max_header_bytes", "%d is out of range: use %d to %d (default %d)",
			s.MaxHeaderBytes, minMaxHeaderBytes, maxMaxHeaderBytes, DefaultMaxHeaderBytes)
	case tokenOK && s.MaxHeaderBytes < s.MaxTokenBytes:
		v.addf("server.max_header_bytes", "%d is less than server.max_token_bytes (%d): a token that size "+
			"could not fit in the request headers; raise max_header_bytes or lower max_token_bytes",
			s.MaxHeaderBytes, s.MaxTokenBytes)
	}
	if t := s.TLS; t != nil {
		v.requiredFile("server.tls.cert_file", t.CertFile, "a PEM certificate (chain)",
			"set both cert_file and key_file, or remove server.tls")
		v.requiredFile("server.tls.key_file", t.KeyFile, "its PEM private key",
			"set both cert_file and key_file, or remove server.tls")
	}
	v.positive("server.read_header_timeout", s.ReadHeaderTimeout, "how long a client may take to send its headers", DefaultReadHeaderTimeout)
	v.positive("server.body_timeout", s.BodyTimeout, "how long a client may take to send a body the gateway reads itself", DefaultBodyTimeout)
	v.nonNegative("server.idle_timeout", s.IdleTimeout, DefaultIdleTimeout)
	v.nonNegative("server.shutdown_grace", s.ShutdownGrace, DefaultShutdownGrace)
	v.adminToken()
	v.nonNegative("server.shutdown_delay", s.ShutdownDelay, 5*time.Second)
}

// listenAddress checks a host:port to listen on.
func (v *validator) listenAddress(path, addr, example string) bool {
	if addr == "" {
		v.addf(path, "is empty: set host:port, like %s (or remove the key for that default)", example)
		return false
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.addf(path, "%s is not host:port: write it like %s, or :%s for every interface",
			quote(addr), example, example[strings.LastIndexByte(example, ':')+1:])
		return false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.addf(path, "%s has port %s, which is not a number from 0 to 65535: write it like %s",
			quote(addr), quote(port), example)
		return false
	}
	return true
}

// sameAddress reports two listen addresses that would collide: the same
// port, on the same host or where either is every interface.
func sameAddress(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	pna, _ := strconv.Atoi(pa)
	pnb, _ := strconv.Atoi(pb)
	if pna != pnb || pna == 0 {
		return false
	}
	every := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return strings.EqualFold(ha, hb) || every(ha) || every(hb)
}

func (v *validator) positive(path string, d Duration, what string, example time.Duration) {
	if d <= 0 {
		v.addf(path, "%s is not positive: set %s, like %s", d, what, example)
	}
}

func (v *validator) nonNegative(path string, d Duration, example time.Duration) {
	if d < 0 {
		v.addf(path, "%s is negative: use 0s or more, like %s", d, example)
	}
}

func (v *validator) log() {
	switch v.c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.addf("log.level", "%s is not a log level: use debug, info, warn or error", quote(v.c.Log.Level))
	}
	switch v.c.Log.Format {
	case "json", "text":
	default:
		v.addf("log.format", "%s is not a log format: use json or text", quote(v.c.Log.Format))
	}
}
