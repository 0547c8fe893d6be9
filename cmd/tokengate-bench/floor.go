package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// floor is the miss path's irreducible work: verify one ES256 umbrella token
// and sign one ES256 token, with go-jose as tokengate does.
type floor struct {
	idp    *devIdP
	tokens []string
	signer jose.Signer
}

func newFloor(idp *devIdP) (*floor, error) {
	toks, err := idp.mintMany("floor", 64, 1)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "floor", Algorithm: "ES256"}},
		(&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, err
	}
	return &floor{idp: idp, tokens: toks, signer: s}, nil
}

// op verifies one token and signs one with a single audience and scope.
func (f *floor) op(i int) error {
	tok, err := jwt.ParseSigned(f.tokens[i%len(f.tokens)], []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return err
	}
	var c jwt.Claims
	var extra struct {
		Scope string `json:"scope"`
	}
	if err := tok.Claims(&f.idp.key.PublicKey, &c, &extra); err != nil {
		return err
	}
	now := time.Now()
	out := jwt.Claims{Issuer: "http://tokengate", Subject: c.Subject, Audience: jwt.Audience{audience(0)},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute)), ID: c.ID}
	_, err = jwt.Signed(f.signer).Claims(out).Claims(map[string]any{"scope": "api0:read"}).Serialize()
	return err
}

// measure runs op on every core for d and returns this process's CPU time
// per op.
func (f *floor) measure(d time.Duration) (time.Duration, error) {
	var (
		ops  atomic.Int64
		stop atomic.Bool
		errv atomic.Value
		wg   sync.WaitGroup
	)
	cpu0 := selfCPU()
	time.AfterFunc(d, func() { stop.Store(true) })
	for w := range runtime.NumCPU() {
		wg.Go(func() {
			for i := w; !stop.Load(); i++ {
				if err := f.op(i); err != nil {
					errv.CompareAndSwap(nil, err)
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := errv.Load().(error); err != nil {
		return 0, fmt.Errorf("crypto floor: %w", err)
	}
	return (selfCPU() - cpu0) / time.Duration(max(ops.Load(), 1)), nil
}
