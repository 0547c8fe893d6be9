package sts

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthclient"
)

// maxTxnIDLen bounds the txn claim of an STS's Txn-Token: it becomes the
// request id in logs and headers.
const maxTxnIDLen = 128

// RemoteTxn requests Txn-Tokens from the STS of exchange.remote (its
// Txn-Token Service, draft "Requesting Txn-Tokens"), with the same client authentication,
// retries and circuit breaker as exchanges. Nothing is cached.
type RemoteTxn struct {
	remote *Remote
	opts   exchange.TxnOptions
}

// NewRemoteTxn builds the Txn-Token client on remote.
func NewRemoteTxn(remote *Remote, opts exchange.TxnOptions) (*RemoteTxn, error) {
	err := opts.Check()
	if remote == nil {
		err = errors.Join(err, errors.New("no STS client"))
	}
	if err != nil {
		return nil, fmt.Errorf("txn token client: %w", err)
	}
	return &RemoteTxn{remote: remote, opts: opts}, nil
}

// MintTxnToken asks the STS for the Txn-Token of req. Errors as for
// Remote.Exchange: a *RejectError (the STS refused the umbrella token: 401),
// ErrExchangeDenied (403), else ErrExchangeUnavailable (503).
func (t *RemoteTxn) MintTxnToken(ctx context.Context, req exchange.TxnRequest) (*exchange.TxnResult, error) {
	r := t.remote
	if req.Subject == nil {
		return nil, exchange.Reject(exchange.ReasonMalformed, "no subject token", nil)
	}
	notAfter := req.Subject.Claims.Expiry
	if notAfter.IsZero() {
		return nil, exchange.Reject(exchange.ReasonMalformed, "token has no exp", nil)
	}
	if !notAfter.After(r.clock()) {
		return nil, exchange.Reject(exchange.ReasonExpired, "token expires before a transaction token could be used", nil)
	}
	scope, err := exchange.TxnScope(req)
	if err != nil {
		return nil, err
	}
	form, err := t.form(req, scope)
	if err != nil {
		return nil, err
	}
	var txn string
	res, err := r.roundTrips(ctx, req.Subject, t.opts.TrustDomain, func(ctx context.Context, endpoint string) (*exchange.Result, time.Duration, error) {
		return r.post(ctx, endpoint, form, func(resp *oauthclient.Response) (*exchange.Result, error) {
			res, id, err := t.parse(resp, resp.Sent, notAfter)
			txn = id
			return res, err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("txn token: %w", err)
	}
	return &exchange.TxnResult{Token: res.AccessToken, Txn: txn, ExpiresAt: res.ExpiresAt}, nil
}

// form is the Txn-Token Request (draft "Txn-Token Request"): a token exchange for
// the trust domain, with the edge request's context in request_context and
// the configured umbrella claims in request_details (the TTS builds rctx
// and tctx from them).
func (t *RemoteTxn) form(req exchange.TxnRequest, scope string) (url.Values, error) {
	r := t.remote
	form := url.Values{}
	form.Set("grant_type", grantTokenExchange)
	form.Set("requested_token_type", exchange.TokenTypeTxnToken)
	form.Set("audience", t.opts.TrustDomain)
	if scope != "" {
		form.Set("scope", scope)
	}
	form.Set("subject_token", req.Subject.SubjectToken())
	form.Set("subject_token_type", r.subjectType)
	rctx, err := json.Marshal(req.Context)
	if err != nil {
		return nil, fmt.Errorf("txn token: request_context: %w: %w", exchange.ErrTxnUnavailable, err)
	}
	form.Set("request_context", string(rctx))
	details, err := exchange.TxnContextClaims(&req.Subject.Claims, t.opts.ContextClaims)
	if err != nil {
		return nil, err
	}
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return nil, fmt.Errorf("txn token: request_details: %w: %w", exchange.ErrTxnUnavailable, err)
		}
		form.Set("request_details", string(b))
	}
	r.addExtraParams(form)
	return form, nil
}

// parse reads a Txn-Token Response (draft "Txn-Token Response"): issued_token_type
// must be the Txn-Token URI (anything else, an access token say, is refused),
// token_type N_A, aud the trust domain, exp (if any) in the future. The token's txn claim is read without verification: it is
// only the request id in logs; the services verify the token itself.
func (t *RemoteTxn) parse(resp *oauthclient.Response, now time.Time, notAfter time.Time) (*exchange.Result, string, error) {
	malformed := stsMalformed(resp)
	tr, err := stsDecodeSuccess(resp)
	if err != nil {
		return nil, "", err
	}
	if tr.IssuedTokenType != exchange.TokenTypeTxnToken {
		return nil, "", malformed("issued_token_type %q is not %s", oauthclient.Sanitize(tr.IssuedTokenType), exchange.TokenTypeTxnToken)
	}
	if tr.TokenType != "N_A" && !strings.EqualFold(tr.TokenType, "Bearer") {
		return nil, "", malformed("token_type %q is not N_A", oauthclient.Sanitize(tr.TokenType))
	}
	txn, ok := unverifiedTxn(tr.AccessToken)
	if !ok {
		return nil, "", malformed("the Txn-Token has no usable txn claim (1 to %d printable characters)", maxTxnIDLen)
	}
	// A Txn-Token is a JWT for the trust domain: one for another audience
	// would be refused by every service, or accepted where it must not be.
	if err := checkIssuedJWT(tr.AccessToken, t.opts.TrustDomain, t.remote.clock()); err != nil {
		return nil, "", &exchange.STSError{Server: stsServer, Status: resp.Status, Description: "unusable Txn-Token response", Err: err}
	}
	exp, err := stsExpiry(tr, now, t.opts.TTL, notAfter, malformed)
	if err != nil {
		return nil, "", err
	}
	return &exchange.Result{AccessToken: tr.AccessToken, IssuedTokenType: tr.IssuedTokenType, TokenType: tr.TokenType, ExpiresAt: exp}, txn, nil
}

// unverifiedTxn reads the txn claim of a compact JWS WITHOUT verifying it:
// for the request id only. ok is false unless it is 1 to 128 printable ASCII
// characters without spaces.
func unverifiedTxn(raw string) (string, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", false
	}
	var claims struct {
		Txn string `json:"txn"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Txn == "" || len(claims.Txn) > maxTxnIDLen {
		return "", false
	}
	for i := 0; i < len(claims.Txn); i++ {
		if c := claims.Txn[i]; c < 0x21 || c > 0x7e {
			return "", false
		}
	}
	return claims.Txn, true
}
