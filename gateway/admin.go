package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokengate/tokengate/config"
)

// defaultReadyTimeout is AdminOptions.ReadyTimeout when unset.
const defaultReadyTimeout = config.DefaultReadyTimeout

const (
	pathJWKS      = "/.well-known/jwks.json"
	pathDiscovery = "/.well-known/openid-configuration"
	// pathASMetadata is RFC 8414's well-known path; for an issuer with a
	// path it is inserted before the path (RFC 8414 section 3.1).
	pathASMetadata = "/.well-known/oauth-authorization-server"
	// grantTokenExchange is the RFC 8693 grant type.
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// ReadinessCheck is one condition /readyz requires. Check returns nil when
// the condition holds; its error text is reported (admin listener only).
type ReadinessCheck struct {
	Name  string
	Check func(context.Context) error
	// Optional: a failure is reported under "degraded" and /readyz stays
	// 200 (e.g. Redis, when cache.redis.required is false).
	Optional bool
	// Parts, instead of Check, reports several components at once (one
	// per issuer): each part with an error is named under "degraded" on
	// its own, and err, when not nil, fails /readyz under Name (no part
	// can serve).
	Parts func(context.Context) (parts map[string]error, err error)
}

// AdminOptions are the dependencies of NewAdmin.
type AdminOptions struct {
	// Gatherer is the registry /metrics exposes.
	Gatherer prometheus.Gatherer
	// Checks are run by /readyz.
	Checks []ReadinessCheck
	// JWKS is the public JWKS JSON of the local signing keys (nil => 404).
	JWKS []byte
	// Issuer is exchange.local.issuer; discovery and the JWKS are also
	// served under its path, as OIDC clients look for them there.
	Issuer string
	// TokenEndpoint is the absolute URL of the RFC 8693 endpoint ("" => omitted).
	TokenEndpoint string
	// Algorithms are the signing algorithms of exchanged tokens.
	Algorithms []string
	// Logger receives failed readiness checks at Debug; nil discards.
	Logger *slog.Logger
	// ReadyTimeout bounds one /readyz run (0 => 3s); a check still running
	// then counts as failed.
	ReadyTimeout time.Duration
	// AdminToken is the bearer secret of POST /admin/revoke; "" disables it.
	AdminToken string
	// Revoker serves POST /admin/revoke, and GET /admin/revocations when
	// it is a RevocationLister; nil disables them.
	Revoker Revoker
	// BodyTimeout bounds reading a request body (server.body_timeout);
	// 0 means config.DefaultBodyTimeout.
	BodyTimeout time.Duration
	// Degraded is tokengate_component_degraded: 1 for each optional check or
	// part that fails, 0 for each that holds; set by every /readyz run and
	// before every /metrics scrape. nil leaves it out.
	Degraded *prometheus.GaugeVec
	// TrustedProxies is server.trusted_proxies: the audit line of a
	// revocation names the client behind them (forwarded.go).
	TrustedProxies []string
}

// admin serves the admin listener: nothing else, and nothing is proxied.
type admin struct {
	metrics   http.Handler
	checks    []ReadinessCheck
	timeout   time.Duration
	jwks      []byte
	discovery []byte // nil when there is no JWKS to point at
	paths     map[string]func(http.ResponseWriter, *http.Request)
	logger    *slog.Logger

	revoker        Revoker
	bodyTimeout    time.Duration
	degraded       *prometheus.GaugeVec
	degradedMu     sync.Mutex // one gauge update at a time: each sets the whole state
	proxies        trustedProxies
	adminTokenSet  bool
	adminTokenHash [sha256.Size]byte
}

// NewAdmin returns the admin handler: /metrics, /healthz, /readyz,
// /.well-known/jwks.json and /.well-known/openid-configuration.
func NewAdmin(opts AdminOptions) http.Handler {
	a := &admin{
		checks:  opts.Checks,
		timeout: opts.ReadyTimeout,
		jwks:    opts.JWKS,
		logger:  opts.Logger,
		revoker: opts.Revoker,

		bodyTimeout: opts.BodyTimeout,
		degraded:    opts.Degraded,
	}
	if a.bodyTimeout <= 0 {
		a.bodyTimeout = config.DefaultBodyTimeout
	}
	if opts.AdminToken != "" {
		a.adminTokenSet, a.adminTokenHash = true, sha256.Sum256([]byte(opts.AdminToken))
	}
	if a.timeout <= 0 {
		a.timeout = defaultReadyTimeout
	}
	// The configuration was validated: a list that does not parse trusts
	// nobody, and the audit line names the TCP peer.
	a.proxies, _ = newTrustedProxies(opts.TrustedProxies)
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	gatherer := opts.Gatherer
	if gatherer == nil {
		gatherer = prometheus.NewRegistry()
	}
	a.metrics = promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
	if opts.JWKS != nil && opts.Issuer != "" {
		a.discovery = discoveryDocument(opts)
	}

	a.paths = map[string]func(http.ResponseWriter, *http.Request){
		"/metrics":     a.serveMetrics,
		"/healthz":     a.healthz,
		"/readyz":      a.readyz,
		pathJWKS:       a.serveJWKS,
		pathDiscovery:  a.serveDiscovery,
		pathASMetadata: a.serveDiscovery,
	}
	// OIDC discovery looks under the issuer's path (issuer +
	// "/.well-known/openid-configuration"); RFC 8414 inserts the well-known
	// segment before it ("/.well-known/oauth-authorization-server" + path).
	if u, err := url.Parse(opts.Issuer); err == nil {
		if base := strings.TrimRight(u.Path, "/"); base != "" {
			a.paths[base+pathJWKS] = a.serveJWKS
			a.paths[base+pathDiscovery] = a.serveDiscovery
			a.paths[pathASMetadata+base] = a.serveDiscovery
		}
	}
	return a
}

func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case pathRevoke:
		a.revoke(w, r) // the one endpoint that changes state: POST, with a bearer secret
		return
	case pathRevocations:
		a.listRevocations(w, r) // behind the same bearer secret
		return
	}
	h, ok := a.paths[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h(w, r)
}

func (a *admin) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
	// Degraded lists optional checks that fail: ready all the same.
	Degraded map[string]string `json:"degraded,omitempty"`
}

// readyz answers the readiness probe: 200 while the gateway can serve
// (degraded parts named), 503 with the reasons when it cannot.
func (a *admin) readyz(w http.ResponseWriter, r *http.Request) {
	status, body := a.readiness(r.Context())
	if status != http.StatusOK {
		a.logger.Debug("not ready", "checks", body.Checks)
	}
	writeJSON(w, status, "application/json", "no-store", body)
}

// serveMetrics refreshes tokengate_component_degraded, so an alert on it
// does not depend on anything probing /readyz, then serves the registry.
func (a *admin) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if a.degraded != nil {
		a.readiness(r.Context())
	}
	a.metrics.ServeHTTP(w, r)
}

// readiness runs every check concurrently under one deadline and sets the
// degraded gauge from the outcome.
func (a *admin) readiness(ctx context.Context) (int, readyBody) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()

	type result struct {
		name  string
		err   error
		parts map[string]error
	}
	results := make(chan result, len(a.checks))
	for _, c := range a.checks {
		go func() {
			if c.Parts != nil {
				parts, err := c.Parts(ctx)
				results <- result{name: c.Name, err: err, parts: parts}
				return
			}
			results <- result{name: c.Name, err: c.Check(ctx)}
		}()
	}
	failed, degraded := map[string]string{}, map[string]string{}
	components := map[string]bool{} // optional checks and parts: true while degraded
	optional := map[string]bool{}
	pending := make(map[string]bool, len(a.checks))
	for _, c := range a.checks {
		pending[c.Name] = true
		optional[c.Name] = c.Optional
	}
	report := func(name, msg string) {
		if optional[name] {
			degraded[name] = msg
			components[name] = true
		} else {
			failed[name] = msg
		}
	}
collect:
	for range a.checks {
		select {
		case res := <-results:
			delete(pending, res.name)
			for part, err := range res.parts {
				components[part] = err != nil
				if err != nil {
					degraded[part] = err.Error()
				}
			}
			if res.err != nil {
				report(res.name, res.err.Error())
			} else if optional[res.name] {
				components[res.name] = false
			}
		case <-ctx.Done():
			break collect
		}
	}
	for name := range pending {
		report(name, "check timed out")
	}
	a.setDegraded(components)

	body := readyBody{Status: "ready"}
	status := http.StatusOK
	if len(failed) > 0 {
		body = readyBody{Status: "not ready", Checks: failed}
		status = http.StatusServiceUnavailable
	}
	if len(degraded) > 0 {
		body.Degraded = degraded
		if status == http.StatusOK {
			body.Status = "degraded"
		}
	}
	return status, body
}

// setDegraded makes the gauge say exactly components: a component that is
// gone (a reload removed an issuer) loses its series.
func (a *admin) setDegraded(components map[string]bool) {
	if a.degraded == nil {
		return
	}
	a.degradedMu.Lock()
	defer a.degradedMu.Unlock()
	a.degraded.Reset()
	for name, bad := range components {
		v := 0.0
		if bad {
			v = 1
		}
		a.degraded.WithLabelValues(name).Set(v)
	}
}

func (a *admin) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if a.jwks == nil {
		http.NotFound(w, r)
		return
	}
	writeRaw(w, http.StatusOK, "application/jwk-set+json", "public, max-age=300", a.jwks)
}

func (a *admin) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	if a.discovery == nil {
		http.NotFound(w, r)
		return
	}
	writeRaw(w, http.StatusOK, "application/json", "public, max-age=300", a.discovery)
}

// discovery is the OIDC Discovery / RFC 8414 metadata of tokengate's
// issuer: what JWT libraries in the backends need to find the keys from
// the issuer URL, plus every member that the two specifications call
// REQUIRED, so that strict discovery clients (authlib, openid-client,
// oauth4webapi) accept the document. tokengate has no authorization
// endpoint and issues no ID tokens; the members about them say so as far
// as the specifications allow (see docs/operations.md, "Discovery").
type discovery struct {
	Issuer        string `json:"issuer"`
	JWKSURI       string `json:"jwks_uri"`
	TokenEndpoint string `json:"token_endpoint,omitempty"`
	// ResponseTypes is REQUIRED and must not be empty (RFC 8414 2, OIDC
	// Discovery 3): "none" (the registered response type that returns no
	// credential) is the honest value for a server without an
	// authorization endpoint.
	ResponseTypes []string `json:"response_types_supported"`
	// GrantTypes is always written: RFC 8414's default for a missing
	// member is authorization_code and implicit, which tokengate does not
	// offer.
	GrantTypes        []string `json:"grant_types_supported"`
	TokenEndpointAuth []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	SubjectTypes      []string `json:"subject_types_supported"`
	// SigningAlgs are the algorithms of the local signing keys: OIDC names
	// the member after ID tokens, and libraries (go-oidc) read it to decide
	// which algorithms to accept.
	SigningAlgs []string `json:"id_token_signing_alg_values_supported"`
}

func discoveryDocument(opts AdminOptions) []byte {
	d := discovery{
		Issuer:        opts.Issuer,
		JWKSURI:       strings.TrimRight(opts.Issuer, "/") + pathJWKS,
		ResponseTypes: []string{"none"},
		GrantTypes:    []string{},
		SigningAlgs:   opts.Algorithms,
		SubjectTypes:  []string{"public"},
	}
	if d.SigningAlgs == nil {
		d.SigningAlgs = []string{}
	}
	if opts.TokenEndpoint != "" {
		d.TokenEndpoint = opts.TokenEndpoint
		// The subject token is the credential: no client authentication.
		d.TokenEndpointAuth = []string{"none"}
		d.GrantTypes = []string{grantTokenExchange}
	}
	b, err := json.Marshal(d)
	if err != nil { // strings only: cannot happen
		return nil
	}
	return b
}

func writeJSON(w http.ResponseWriter, status int, contentType, cacheControl string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeRaw(w, status, contentType, cacheControl, append(b, '\n'))
}

func writeRaw(w http.ResponseWriter, status int, contentType, cacheControl string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", cacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
