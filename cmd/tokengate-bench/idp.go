package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// devIdP is the benchmark's identity provider: one ES256 key, a JWKS
// endpoint on loopback, and a minting function for umbrella tokens.
type devIdP struct {
	url    string
	key    *ecdsa.PrivateKey
	signer jose.Signer
	srv    *http.Server
}

func newDevIdP() (*devIdP, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("idp key: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "bench-idp", Algorithm: "ES256"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("idp signer: %w", err)
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "bench-idp", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		return nil, fmt.Errorf("idp jwks: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("idp listen: %w", err)
	}
	i := &devIdP{url: "http://" + ln.Addr().String(), key: key, signer: signer}
	i.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwks)
	}), ReadHeaderTimeout: 5 * time.Second}
	go i.srv.Serve(ln)
	return i, nil
}

func (i *devIdP) jwksURI() string { return i.url + "/jwks.json" }

// mint signs an umbrella token for sub with every bench audience and every
// bench scope; iat is now and exp one hour later.
func (i *devIdP) mint(sub string) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss": i.url, "sub": sub, "aud": audiences(),
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": sub, "scope": allScopes(),
	}
	tok, err := jwt.Signed(i.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	return tok, nil
}

// mintMany mints n tokens with distinct subjects on every core.
func (i *devIdP) mintMany(prefix string, n int, workers int) ([]string, error) {
	out := make([]string, n)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := w; j < n; j += workers {
				tok, err := i.mint(fmt.Sprintf("%s-%d", prefix, j))
				if err != nil {
					errs[w] = err
					return
				}
				out[j] = tok
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (i *devIdP) close() { i.srv.Close() }
