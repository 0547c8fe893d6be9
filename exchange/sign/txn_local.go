package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/exchange/keys"
)

// LocalTxnOptions configure NewLocalTxn.
type LocalTxnOptions struct {
	exchange.TxnOptions
	// Issuer is the iss claim: exchange.local.issuer, under which the JWKS
	// and discovery are served, so services verify Txn-Tokens with the same
	// keys as exchanged tokens.
	Issuer string
	// Keys sign: the active key (the first of exchange.local.signing_keys).
	Keys *keys.KeySet
	// Clock is nil for time.Now.
	Clock func() time.Time
	// Random is the source of txn ids; nil for crypto/rand. It must be safe
	// for concurrent use.
	Random io.Reader
}

// LocalTxn mints Txn-Tokens with the local signing key. It is immutable
// after NewLocalTxn and safe for concurrent use. Nothing is cached: every
// request gets its own txn.
type LocalTxn struct {
	opts   exchange.TxnOptions
	issuer string
	kid    string
	alg    string
	signer jose.Signer // typ txntoken+jwt, kid of the active key
	clock  func() time.Time
	random io.Reader
}

// NewLocalTxn builds the signer of Txn-Tokens from the active local key.
func NewLocalTxn(opts LocalTxnOptions) (*LocalTxn, error) {
	err := opts.TxnOptions.Check()
	if opts.Issuer == "" {
		err = errors.Join(err, errors.New("issuer is empty: set exchange.local.issuer"))
	}
	if opts.Keys == nil {
		err = errors.Join(err, errors.New("no signing keys: set exchange.local.signing_keys"))
	}
	if err != nil {
		return nil, fmt.Errorf("txn token signer: %w", err)
	}
	k := opts.Keys.Active()
	signer, err := k.NewSigner(exchange.TxnTokenJWSType)
	if err != nil {
		return nil, fmt.Errorf("txn token signer: create %s signer: %w", k.Alg, err)
	}
	l := &LocalTxn{
		opts:   opts.TxnOptions,
		issuer: opts.Issuer,
		kid:    k.Kid,
		alg:    k.Alg,
		signer: signer,
		clock:  opts.Clock,
		random: txnRandom(opts.Random),
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	return l, nil
}

// txnClaims is the body of a locally minted Txn-Token (draft: "JWT Body Claims").
// A struct, not a map: it marshals in a fixed order and faster.
type txnClaims struct {
	Iss   string                     `json:"iss"`
	Iat   int64                      `json:"iat"`
	Exp   int64                      `json:"exp"`
	Aud   string                     `json:"aud"`
	Txn   string                     `json:"txn"`
	Sub   string                     `json:"sub"`
	Scope string                     `json:"scope"`
	ReqWL string                     `json:"req_wl"`
	Tctx  map[string]json.RawMessage `json:"tctx,omitempty"`
	Rctx  *exchange.TxnContext       `json:"rctx,omitempty"`
}

// MintTxnToken signs the Txn-Token of req. Errors: a *RejectError when the
// umbrella token cannot yield one (no subject, expiring now), else
// ErrTxnUnavailable.
func (l *LocalTxn) MintTxnToken(ctx context.Context, req exchange.TxnRequest) (*exchange.TxnResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mint txn token: %w: %w", exchange.ErrTxnUnavailable, err)
	}
	if req.Subject == nil {
		return nil, exchange.Reject(exchange.ReasonMalformed, "no subject token", nil)
	}
	c := &req.Subject.Claims
	sub, err := tokenSubject(c)
	if err != nil {
		return nil, err
	}
	iat, expUnix, err := tokenLifetime(l.clock(), l.opts.TTL, c, "a transaction token")
	if err != nil {
		return nil, err
	}
	scope, err := exchange.TxnScope(req)
	if err != nil {
		return nil, err
	}
	tctx, err := exchange.TxnContextClaims(c, l.opts.ContextClaims)
	if err != nil {
		return nil, err
	}
	txn, err := newTxnID(l.random)
	if err != nil {
		return nil, fmt.Errorf("mint txn token: %w: %w", exchange.ErrTxnUnavailable, err)
	}
	claims := txnClaims{
		Iss: l.issuer, Iat: iat, Exp: expUnix, Aud: l.opts.TrustDomain, Txn: txn,
		Sub: sub, Scope: scope, ReqWL: l.opts.WorkloadID, Tctx: tctx,
	}
	if req.Context != (exchange.TxnContext{}) {
		claims.Rctx = &req.Context
	}
	token, err := signJWT(l.signer, claims)
	if err != nil {
		return nil, fmt.Errorf("mint txn token: sign with %s key %q: %w: %w", l.alg, l.kid, exchange.ErrTxnUnavailable, err)
	}
	return &exchange.TxnResult{Token: token, Txn: txn, ExpiresAt: time.Unix(expUnix, 0)}, nil
}
