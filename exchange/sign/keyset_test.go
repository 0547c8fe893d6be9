package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokengate/tokengate/exchange/keys"
)

func TestNewKeySetFromSigners(t *testing.T) {
	k := ltGetKeys(t)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		spec    keys.KeySpec
		wantErr string
	}{
		{"ecdsa", keys.KeySpec{Signer: k.P256, Alg: "ES256", Kid: "a"}, ""},
		{"ed25519 pointer", keys.KeySpec{Signer: &k.Ed, Alg: "EdDSA"}, ""},
		{"opaque ES256", keys.KeySpec{Signer: ltOpaqueSigner{k.P256}, Alg: "ES256"}, ""},
		{"opaque PS256", keys.KeySpec{Signer: ltOpaqueSigner{k.RSA2048}, Alg: "PS256"}, ""},
		{"opaque EdDSA", keys.KeySpec{Signer: ltOpaqueSigner{k.Ed}, Alg: "EdDSA"}, ""},
		{"mismatched public key", keys.KeySpec{Signer: ltLyingSigner{ltOpaqueSigner{k.P256}, other.Public()}, Alg: "ES256"}, "does not verify"},
		{"nil signer", keys.KeySpec{Alg: "ES256"}, "key[0]: no private key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := keys.NewKeySetFromSigners([]keys.KeySpec{tc.spec})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewKeySetFromSigners: %v", err)
			}
			if tc.spec.Kid != "" && ks.Active().Kid != tc.spec.Kid {
				t.Errorf("kid = %q, want %q", ks.Active().Kid, tc.spec.Kid)
			}
			if tc.spec.Kid == "" && ks.Active().Kid != ltThumbprint(t, tc.spec.Signer.Public()) {
				t.Errorf("kid = %q, want the thumbprint", ks.Active().Kid)
			}
			// The key really signs: a minted token verifies with the JWKS.
			l := ltNewLocal(t, ks, nil)
			res, err := l.Exchange(t.Context(), ltRequest(ltClaims(), "https://api.example.com", nil))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			ltVerify(t, res.AccessToken, ks, jose.SignatureAlgorithm(tc.spec.Alg))
		})
	}
}
