package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// floor is the miss path's irreducible work, done the cheapest way a Go
// program can: decode the umbrella token's segments, check its ES256
// signature (crypto/ecdsa), decode its claims and encode the new token's
// once (encoding/json), and sign them (go-jose). tokengate does all of that
// and its security checks on top; the floor skips the checks. (Until
// tokengate stopped using go-jose's parser and jwt builder, the floor used
// them too: jwt.ParseSigned, Claims, jwt.Signed, which cost more.)
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
	tok := f.tokens[i%len(f.tokens)]
	dot1 := strings.IndexByte(tok, '.')
	dot2 := strings.LastIndexByte(tok, '.')
	payload, err := base64.RawURLEncoding.DecodeString(tok[dot1+1 : dot2])
	if err != nil {
		return err
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot2+1:])
	if err != nil || len(sig) != 64 {
		return fmt.Errorf("signature: %v", err)
	}
	digest := sha256.Sum256([]byte(tok[:dot2]))
	if !ecdsa.Verify(&f.idp.key.PublicKey, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("signature does not verify")
	}
	var c struct {
		Sub   string `json:"sub"`
		ID    string `json:"jti"`
		Scope string `json:"scope"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return err
	}
	now := time.Now().Unix()
	out, err := json.Marshal(map[string]any{"iss": "http://tokengate", "sub": c.Sub, "aud": audience(0),
		"iat": now, "exp": now + 600, "jti": c.ID, "scope": "api0:read"})
	if err != nil {
		return err
	}
	obj, err := f.signer.Sign(out)
	if err != nil {
		return err
	}
	_, err = obj.CompactSerialize()
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
