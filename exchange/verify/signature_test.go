package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// checkSignature agrees with go-jose's own verification on every
// algorithm, for good signatures, tampered ones and mismatched keys: it
// replaced go-jose's second parse of the token, not its rules.
func TestCheckSignatureAgreesWithGoJose(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherP256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	signers := []struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
		pub int // its public key in pubs
	}{
		{jose.ES256, p256, 0}, {jose.ES384, p384, 1}, {jose.ES512, p521, 2},
		{jose.RS256, rsaKey, 3}, {jose.RS384, rsaKey, 3}, {jose.RS512, rsaKey, 3},
		{jose.PS256, rsaKey, 3}, {jose.PS384, rsaKey, 3}, {jose.PS512, rsaKey, 3},
		{jose.EdDSA, edKey, 4},
	}
	pubs := []any{p256.Public(), p384.Public(), p521.Public(), rsaKey.Public(), edKey.Public(),
		otherRSA.Public(), otherP256.Public(), []byte("hmac-secret-32-bytes-long-000000")}

	for _, s := range signers {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, nil)
		if err != nil {
			t.Fatal(err)
		}
		obj, err := signer.Sign([]byte(`{"iss":"https://idp.example","sub":"alice"}`))
		if err != nil {
			t.Fatal(err)
		}
		compact, _ := obj.CompactSerialize()
		input, sig, err := signatureParts(compact)
		if err != nil {
			t.Fatal(err)
		}
		tampered := append([]byte(nil), sig...)
		tampered[len(tampered)/2] ^= 1
		sigs := map[string][]byte{"good": sig, "tampered": tampered, "truncated": sig[:len(sig)-1], "empty": nil,
			"padded": append(append([]byte(nil), sig...), 0)}
		for name, sg := range sigs {
			for i, pub := range pubs {
				ours := checkSignature(string(s.alg), pub, input, sg) == nil
				theirs := goJoseVerifies(t, s.alg, pub, input, sg)
				if ours != theirs {
					t.Errorf("%s %s signature with key %T: ours %v, go-jose %v", s.alg, name, pub, ours, theirs)
				}
				if name == "good" && i == s.pub && !ours {
					t.Errorf("%s: a good signature does not verify", s.alg)
				}
			}
		}
	}
	if checkSignature("HS256", []byte("k"), "a.b", []byte("x")) == nil || checkSignature("none", nil, "a.b", nil) == nil {
		t.Error("a symmetric or unknown algorithm verified")
	}
}

// goJoseVerifies asks go-jose about the same bytes, through its parser.
func goJoseVerifies(t *testing.T, alg jose.SignatureAlgorithm, pub any, input string, sig []byte) bool {
	t.Helper()
	jws, err := jose.ParseSignedCompact(input+"."+b64(sig), []jose.SignatureAlgorithm{alg})
	if err != nil {
		return false
	}
	_, err = jws.Verify(pub)
	return err == nil
}

func b64(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return vtB64(string(b))
}
