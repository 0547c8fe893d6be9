package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	_ "crypto/sha256" // the hashes of the RS, PS and ES algorithms
	_ "crypto/sha512"
	"errors"
	"math/big"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/exchange"
)

// The signature of a compact JWS is checked here, on the token exactly as
// exchange.ParseJWS read it (strict syntax, header rules, one spelling per
// signature), with the standard library's primitives and go-jose's rules
// for each algorithm (RFC 7518 section 3): go-jose would parse the whole
// token a second time, which was a tenth of the miss path's CPU.

var errBadSignature = errors.New("signature does not verify")

// checkSignature verifies sig over signingInput (the ASCII header.payload)
// with key for alg. key is a JWKS key's public key; a key of another type
// than alg's, or an EC key on another curve, never verifies.
func checkSignature(alg string, key any, signingInput string, sig []byte) error {
	switch jose.SignatureAlgorithm(alg) {
	case jose.ES256:
		return checkECDSA(key, elliptic.P256(), crypto.SHA256, 32, signingInput, sig)
	case jose.ES384:
		return checkECDSA(key, elliptic.P384(), crypto.SHA384, 48, signingInput, sig)
	case jose.ES512:
		return checkECDSA(key, elliptic.P521(), crypto.SHA512, 66, signingInput, sig)
	case jose.RS256, jose.PS256:
		return checkRSA(alg, key, crypto.SHA256, signingInput, sig)
	case jose.RS384, jose.PS384:
		return checkRSA(alg, key, crypto.SHA384, signingInput, sig)
	case jose.RS512, jose.PS512:
		return checkRSA(alg, key, crypto.SHA512, signingInput, sig)
	case jose.EdDSA:
		pub, ok := key.(ed25519.PublicKey)
		if !ok || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, []byte(signingInput), sig) {
			return errBadSignature
		}
		return nil
	}
	return errBadSignature // symmetric and unknown algorithms: never
}

// checkECDSA: the signature is R || S, each exactly size bytes (RFC 7518
// section 3.4), on the curve alg names.
func checkECDSA(key any, curve elliptic.Curve, h crypto.Hash, size int, signingInput string, sig []byte) error {
	pub, ok := key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != curve || len(sig) != 2*size {
		return errBadSignature
	}
	r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
	if !ecdsa.Verify(pub, digest(h, signingInput), r, s) {
		return errBadSignature
	}
	return nil
}

// checkRSA: PKCS #1 v1.5 for RS*, PSS with the salt length found in the
// signature for PS* (as go-jose verifies).
func checkRSA(alg string, key any, h crypto.Hash, signingInput string, sig []byte) error {
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return errBadSignature
	}
	d := digest(h, signingInput)
	var err error
	if strings.HasPrefix(alg, "PS") {
		err = rsa.VerifyPSS(pub, h, d, sig, nil)
	} else {
		err = rsa.VerifyPKCS1v15(pub, h, d, sig)
	}
	if err != nil {
		return errBadSignature
	}
	return nil
}

func digest(h crypto.Hash, s string) []byte {
	hh := h.New()
	hh.Write([]byte(s))
	return hh.Sum(nil)
}

// signatureParts splits a compact JWS that exchange.ParseJWS accepted into
// its signing input and decoded signature.
func signatureParts(raw string) (signingInput string, sig []byte, err error) {
	dot := strings.LastIndexByte(raw, '.')
	if dot < 0 {
		return "", nil, exchange.Reject(exchange.ReasonMalformed, "token is not a compact JWS", nil)
	}
	if sig, err = exchange.DecodeSegment(raw[dot+1:]); err != nil {
		return "", nil, exchange.Reject(exchange.ReasonMalformed, "token signature is not base64url", nil)
	}
	return raw[:dot], sig, nil
}
