package sts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/keys"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

// remoteMode is the mode label of remote exchanges in metrics.
const remoteMode = "remote"

// Metric results of remote exchanges: what the caller got.
const (
	remoteResultOK          = "ok"
	remoteResultRejected    = "rejected"         // the STS refused: 401 / 403
	remoteResultUnavailable = "unavailable"      // no answer, or a failure: 503
	remoteResultInvalid     = "invalid_response" // a 200 that cannot be used (malformed, another audience): 503
	remoteResultConfig      = "sts_config_error" // the STS refused tokengate's own request: 503
)

// Retry defaults.
const (
	defaultRemoteMaxAttempts = config.DefaultRemoteMaxAttempts
	defaultRemoteBackoff     = config.DefaultRemoteBackoff
	defaultRemoteTimeout     = config.DefaultRemoteTimeout
	// remoteMinAttemptTime: no new attempt starts with less time than this
	// left; it could not finish.
	remoteMinAttemptTime = 20 * time.Millisecond
)

// RemoteOptions configure NewRemote.
type RemoteOptions struct {
	// Config is exchange.remote, validated.
	Config config.Remote
	// TokenTTL caps an exchanged token's cached life (exchange.token_ttl).
	TokenTTL time.Duration
	// HTTPClient calls the STS. Required. Remote uses a copy that never
	// follows redirects: a redirect would carry the credentials and the
	// umbrella token elsewhere.
	HTTPClient *http.Client
	// Clock is nil for time.Now.
	Clock func() time.Time
	// Random is the source of client assertion jtis; nil for crypto/rand.
	Random io.Reader
	// Metrics may be nil (tests).
	Metrics *exchange.Metrics
	// Logger is nil for no logging. Tokens are never logged.
	Logger *slog.Logger

	// MaxAttempts bounds the attempts of one exchange (0 means 3); all of
	// them fit in Config.Timeout.
	MaxAttempts int
	// Backoff is the base of the jittered exponential back-off between
	// attempts (0 means 50ms).
	Backoff time.Duration
	// BreakerThreshold is how many consecutive transient failures open the
	// circuit breaker (0 means 5); BreakerCooldown is its first open period
	// (0 means 1s), doubled after each failed probe up to BreakerMaxCooldown
	// (0 means 30s).
	BreakerThreshold   int
	BreakerCooldown    time.Duration
	BreakerMaxCooldown time.Duration
}

// Remote obtains exchanged tokens from an RFC 8693 STS. It is the Upstream
// of the caching exchanger in remote mode, immutable after NewRemote apart
// from its breaker and discovered endpoint, and safe for concurrent use.
type Remote struct {
	endpoint     *stsEndpoint
	oauth        *oauthclient.Client
	client       *http.Client
	subjectType  string
	requested    string
	resource     config.Resource
	ttl          time.Duration
	timeout      time.Duration
	maxAttempts  int
	backoff      time.Duration
	breaker      *stsBreaker
	clock        func() time.Time
	metrics      *exchange.Metrics
	logger       *slog.Logger
	fingerprint  string
	usesDiscover bool
	// extra are exchange.remote.extra_params, sorted by name.
	extra [][2]string
	// sts names the STS in logs: its issuer, else its token endpoint.
	sts string

	// configProblem is the last refusal of tokengate's own request by the
	// STS (ErrSTSConfig), cleared by the next success: /readyz shows it as
	// degraded. nil when there is none.
	configProblem atomic.Pointer[string]

	// lastFailureLog is when an STS failure was last logged above debug
	// (UnixNano), so an outage does not write a line per request.
	lastFailureLog atomic.Int64

	// wait sleeps between attempts; tests replace it to run without delay.
	wait func(ctx context.Context, d time.Duration) error
	// jitter returns a random duration in [0, d]; tests make it exact.
	jitter func(d time.Duration) time.Duration
}

// NewRemote checks opts, loads the client key (private_key_jwt) and
// precomputes the fingerprint. It does not contact the STS: Prefetch does.
func NewRemote(opts RemoteOptions) (*Remote, error) {
	cfg := opts.Config
	var problems []error
	if cfg.TokenEndpoint == "" && cfg.Issuer == "" {
		problems = append(problems, errors.New("neither token_endpoint nor issuer is set"))
	}
	if cfg.ClientID == "" {
		problems = append(problems, errors.New("client_id is empty"))
	}
	if opts.TokenTTL <= 0 {
		problems = append(problems, fmt.Errorf("token_ttl is %v: set exchange.token_ttl to a positive duration", opts.TokenTTL))
	}
	if opts.HTTPClient == nil {
		problems = append(problems, errors.New("an HTTP client is required"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("remote exchanger: %w", errors.Join(problems...))
	}
	r := &Remote{
		subjectType:  orDefault(cfg.SubjectTokenType, exchange.TokenTypeAccessToken),
		requested:    orDefault(cfg.RequestedTokenType, exchange.TokenTypeAccessToken),
		resource:     cfg.Resource,
		ttl:          opts.TokenTTL,
		timeout:      cfg.Timeout.D(),
		maxAttempts:  opts.MaxAttempts,
		backoff:      opts.Backoff,
		clock:        opts.Clock,
		metrics:      opts.Metrics,
		logger:       opts.Logger,
		usesDiscover: cfg.TokenEndpoint == "",
		extra:        sortedParams(cfg.ExtraParams),
		sts:          orDefault(cfg.Issuer, cfg.TokenEndpoint),
	}
	if r.timeout <= 0 {
		r.timeout = defaultRemoteTimeout
	}
	if r.maxAttempts <= 0 {
		r.maxAttempts = defaultRemoteMaxAttempts
	}
	if r.backoff <= 0 {
		r.backoff = defaultRemoteBackoff
	}
	if r.clock == nil {
		r.clock = time.Now
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	random := opts.Random
	if random == nil {
		random = rand.Reader
	}
	auth, err := newSTSClientAuth(cfg, random)
	if err != nil {
		return nil, fmt.Errorf("remote exchanger: %w", err)
	}
	r.oauth = oauthclient.NewClient(oauthclient.ClientOptions{
		HTTP: opts.HTTPClient, Auth: auth, Server: stsServer, MaxBody: stsMaxBody, Clock: r.clock,
	})
	client := *opts.HTTPClient
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	r.client = &client
	r.endpoint = newSTSEndpoint(cfg.TokenEndpoint, cfg.Issuer, r.client, r.timeout, cfg.AllowInsecureHTTP, r.clock, r.logger)
	r.breaker = newSTSBreaker(opts.BreakerThreshold, opts.BreakerCooldown, opts.BreakerMaxCooldown, func(from, to gobreaker.State, backoff time.Duration) {
		level := slog.LevelInfo
		if to == gobreaker.StateOpen {
			level = slog.LevelWarn
		}
		r.logger.Log(context.Background(), level, "sts circuit breaker "+to.String(),
			"from", from.String(), "backoff", backoff.String())
	})
	r.wait = remoteWait
	r.jitter = func(d time.Duration) time.Duration { return time.Duration(mrand.Int64N(int64(d) + 1)) }
	r.fingerprint = r.remoteFingerprint(cfg)
	return r, nil
}

// sortedParams lists a parameter map by name: a stable order for the
// fingerprint and the wire.
func sortedParams(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, [2]string{k, m[k]})
	}
	return out
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// remoteFingerprint hashes every setting that changes the tokens the STS
// issues: where they come from, who asks, how, for what type, with what
// resource and extra parameters, for how long they are kept. The client
// secret enters only as a hash, so rotating it changes the fingerprint
// without the fingerprint revealing it (the extra parameters' values, which
// may be secrets too, only enter the SHA-256 of the whole).
func (r *Remote) remoteFingerprint(cfg config.Remote) string {
	h := sha256.New()
	resource := "false"
	switch {
	case r.resource.All:
		resource = "true"
	case len(r.resource.Audiences) > 0:
		resource = strings.Join(slices.Sorted(slices.Values(r.resource.Audiences)), "\x00")
	}
	for _, s := range []string{
		cfg.TokenEndpoint, cfg.Issuer, cfg.ClientID, r.oauth.Fingerprint(),
		r.subjectType, r.requested, resource, r.ttl.String(),
	} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	fmt.Fprintf(h, "extra_params:%d;", len(r.extra))
	for _, kv := range r.extra {
		fmt.Fprintf(h, "%d:%s=%d:%s;", len(kv[0]), kv[0], len(kv[1]), kv[1])
	}
	return "remote:" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// Fingerprint identifies the STS settings; cache keys include it, so a
// change of STS, client, credential, token types, resource setting or extra
// parameters never serves a token obtained under the old settings.
func (r *Remote) Fingerprint() string { return r.fingerprint }

// Prefetch resolves the token endpoint from the STS's metadata now (when
// only the issuer is configured), so the first requests do not wait for it.
func (r *Remote) Prefetch(ctx context.Context) error {
	_, err := r.endpoint.resolve(ctx)
	return err
}

// Ready reports whether the STS can be asked: its metadata has been read
// (when discovered). The STS's own health is not probed: its failures
// answer requests with 503, and the breaker keeps them fast.
func (r *Remote) Ready(ctx context.Context) error {
	if !r.usesDiscover {
		return nil
	}
	if _, err := r.endpoint.resolve(ctx); err != nil {
		return fmt.Errorf("sts metadata: %w", err)
	}
	return nil
}

// Degraded reports what is wrong with the STS while requests may still
// succeed: its circuit breaker is open, or it refused tokengate's own
// request last time (ErrSTSConfig). /readyz names it under "degraded" and
// stays 200: the STS's state is not the replica's, and taking every replica
// out of service would not fix it.
func (r *Remote) Degraded(context.Context) error {
	if p := r.configProblem.Load(); p != nil {
		return errors.New(*p)
	}
	if left, open := r.breaker.openRemaining(); open {
		return fmt.Errorf("%w; next try in %s", errCircuitOpen, left.Round(time.Millisecond))
	}
	return nil
}

// Exchange asks the STS for a token for req.Audience with req.Scopes. Errors:
// a *RejectError (the STS refused the subject token: 401),
// ErrExchangeDenied (not for this audience or scopes: 403), ErrSTSConfig
// (the STS refused tokengate's request: 503), else ErrExchangeUnavailable
// (503); each wraps the *STSError.
func (r *Remote) Exchange(ctx context.Context, req exchange.Request) (*exchange.Result, error) {
	start := time.Now()
	res, err := r.remoteExchange(ctx, req)
	if m := r.metrics; m != nil {
		m.Exchanges.WithLabelValues(req.Audience, remoteMode, remoteResult(err)).Inc()
		m.ExchangeDuration.WithLabelValues(remoteMode).Observe(time.Since(start).Seconds())
	}
	return res, err
}

// remoteResult is the result label of an exchange's outcome.
func remoteResult(err error) string {
	var se *exchange.STSError
	switch {
	case err == nil:
		return remoteResultOK
	case errors.Is(err, exchange.ErrInvalidToken), errors.Is(err, exchange.ErrExchangeDenied):
		return remoteResultRejected
	case errors.Is(err, exchange.ErrSTSConfig):
		return remoteResultConfig
	case errors.As(err, &se) && stsInvalidResponse(se):
		return remoteResultInvalid
	}
	return remoteResultUnavailable
}

func (r *Remote) remoteExchange(ctx context.Context, req exchange.Request) (*exchange.Result, error) {
	if req.Subject == nil {
		return nil, exchange.Reject(exchange.ReasonMalformed, "no subject token", nil)
	}
	if req.Audience == "" {
		return nil, errors.New("remote exchange: empty audience")
	}
	notAfter := req.Subject.Claims.Expiry
	if notAfter.IsZero() {
		return nil, exchange.Reject(exchange.ReasonMalformed, "token has no exp", nil)
	}
	if !notAfter.After(r.clock()) {
		return nil, exchange.Reject(exchange.ReasonExpired, "token expires before an exchanged token could be used", nil)
	}

	return r.roundTrips(ctx, req.Subject, req.Audience, func(ctx context.Context, endpoint string) (*exchange.Result, time.Duration, error) {
		return r.attempt(ctx, endpoint, req, notAfter)
	})
}

// roundTrips runs one call to the STS within the timeout: the endpoint,
// the breaker, retries of transient failures; send sends one request.
// Failures become a *RejectError, ErrExchangeDenied or ErrExchangeUnavailable
// (stsClientError). audience is for the log line only.
func (r *Remote) roundTrips(ctx context.Context, subject *exchange.Token, audience string,
	send func(ctx context.Context, endpoint string) (*exchange.Result, time.Duration, error)) (*exchange.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	endpoint, err := r.endpoint.resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("remote exchange: %w: %w", exchange.ErrExchangeUnavailable, err)
	}

	var last *exchange.STSError
	for attempt := 1; ; attempt++ {
		done, err := r.breaker.allow()
		if err != nil {
			if last != nil {
				return nil, fmt.Errorf("remote exchange: %w: %w (after %w)", exchange.ErrExchangeUnavailable, err, last)
			}
			return nil, fmt.Errorf("remote exchange: %w: %w", exchange.ErrExchangeUnavailable, err)
		}
		res, retryAfter, err := send(ctx, endpoint)
		if err == nil {
			done(breakerSuccess)
			r.configProblem.Store(nil)
			return res, nil
		}
		var se *exchange.STSError
		if !errors.As(err, &se) {
			// Not the STS's doing (a signing failure): nothing to retry.
			done(breakerUnknown)
			return nil, fmt.Errorf("remote exchange: %w: %w", exchange.ErrExchangeUnavailable, err)
		}
		se = r.redactSTSError(se, subject)
		last = se
		switch {
		case errors.Is(se.Err, context.Canceled):
			done(breakerUnknown)
		case se.Retryable():
			done(breakerFailure)
		default:
			done(breakerSuccess)
		}
		if !se.Retryable() || attempt >= r.maxAttempts || ctx.Err() != nil {
			break
		}
		d := max(r.jitter(r.backoff<<(attempt-1)), retryAfter)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d+remoteMinAttemptTime {
			break // no time left for another attempt
		}
		r.logger.DebugContext(ctx, "retrying the sts", "attempt", attempt, "status", se.Status, "backoff", d.String())
		if err := r.wait(ctx, d); err != nil {
			break
		}
	}
	out := stsClientError(last)
	switch stsOutcomeOf(last) {
	case stsRejected, stsDenied:
		// A considered answer about the caller's token: the STS accepted
		// tokengate's request itself.
		r.configProblem.Store(nil)
	case stsConfig:
		p := fmt.Sprintf("the STS refused tokengate's request: %s", last.Error())
		r.configProblem.Store(&p)
		fallthrough
	case stsUnavailable:
		level := slog.LevelWarn
		if last.Status >= 400 && last.Status < 500 {
			// A 4xx the caller cannot cause: tokengate's configuration at
			// the STS (client, secret, grant, parameters) needs fixing.
			level = slog.LevelError
		}
		if !r.failureLogDue() {
			// The same outage fails every request; one line per interval
			// says it, the rest go to debug.
			level = slog.LevelDebug
		}
		r.logger.Log(ctx, level, "token exchange at the sts failed",
			"sts", r.sts, "endpoint", endpoint, "audience", audience, "result", remoteResult(out),
			"status", last.Status, "error", last.Code, "error_description", last.Description,
			"cause", errString(last.Err))
	}
	return nil, out
}

// remoteFailureLogInterval is the least time between two warn/error lines
// about STS failures.
const remoteFailureLogInterval = 10 * time.Second

// failureLogDue reports whether an STS failure may be logged above debug now.
func (r *Remote) failureLogDue() bool {
	now := r.clock().UnixNano()
	last := r.lastFailureLog.Load()
	if last != 0 && now-last < int64(remoteFailureLogInterval) {
		return false
	}
	return r.lastFailureLog.CompareAndSwap(last, now)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// redactSTSError removes the subject token from what the STS said, should it
// echo it: the error reaches logs.
func (r *Remote) redactSTSError(se *exchange.STSError, subject *exchange.Token) *exchange.STSError {
	raw := subject.SubjectToken()
	if len(raw) < 8 || !strings.Contains(se.Description, raw) {
		return se
	}
	c := *se
	c.Description = strings.ReplaceAll(c.Description, raw, "[redacted]")
	return &c
}

// attempt sends one exchange request. It returns the result, or an error
// (an *STSError for anything the STS did or did not answer) and the
// Retry-After the STS asked for (0 when none).
func (r *Remote) attempt(ctx context.Context, endpoint string, req exchange.Request, notAfter time.Time) (*exchange.Result, time.Duration, error) {
	form := url.Values{}
	form.Set("grant_type", grantTokenExchange)
	form.Set("subject_token", req.Subject.SubjectToken())
	form.Set("subject_token_type", r.subjectType)
	form.Set("requested_token_type", r.requested)
	form.Set("audience", req.Audience)
	if r.resource.For(req.Audience) {
		form.Set("resource", req.Audience)
	}
	if len(req.Scopes) > 0 {
		form.Set("scope", strings.Join(req.Scopes, " "))
	}
	r.addExtraParams(form)
	return r.post(ctx, endpoint, form, func(resp *oauthclient.Response) (*exchange.Result, error) {
		res, err := stsParseSuccess(resp, resp.Sent, r.ttl, notAfter)
		if err != nil {
			return nil, err
		}
		if err := checkIssuedJWT(res.AccessToken, req.Audience, r.clock()); err != nil {
			return nil, &exchange.STSError{Server: stsServer, Status: resp.Status, Description: "unusable token response", Err: err}
		}
		if res.Scope == "" && len(req.Scopes) > 0 {
			// RFC 8693 2.2.1: scope may be omitted when it is what was asked.
			res.Scope = strings.Join(req.Scopes, " ")
		}
		return res, nil
	})
}

// addExtraParams adds exchange.remote.extra_params to form. Validation
// refused the names tokengate sets; Add (not Set) could still never replace
// one of them, should a name slip through.
func (r *Remote) addExtraParams(form url.Values) {
	for _, kv := range r.extra {
		if _, taken := form[kv[0]]; taken {
			continue
		}
		form.Add(kv[0], kv[1])
	}
}

// post sends form to the STS with tokengate's client authentication and
// parses a 200 answer with parse. It returns the result, or an error (an
// *STSError for anything the STS did or did not answer) and the Retry-After
// the STS asked for (0 when none).
func (r *Remote) post(ctx context.Context, endpoint string, form url.Values,
	parse func(resp *oauthclient.Response) (*exchange.Result, error)) (*exchange.Result, time.Duration, error) {
	resp, retryAfter, err := r.oauth.PostForm(ctx, endpoint, form, "application/json")
	if err != nil {
		return nil, retryAfter, err
	}
	res, err := parse(resp)
	if err != nil {
		return nil, 0, err
	}
	return res, 0, nil
}

// remoteWait sleeps for d or until ctx ends.
func remoteWait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newSTSClientAuth builds the configured method. random is the source of
// assertion jtis.
func newSTSClientAuth(cfg config.Remote, random io.Reader) (oauthclient.ClientAuth, error) {
	return keys.NewClientAuth("exchange.remote", cfg.AuthMethod, cfg.ClientID, cfg.ClientSecret,
		cfg.PrivateKey, cfg.AssertionAudience, random)
}
