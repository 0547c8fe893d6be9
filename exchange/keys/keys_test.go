package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// The key fixtures are oauthtest's, shared with the other key tests.
type ltKeys = oauthtest.KeyFixtures

func ltGetKeys(t testing.TB) *ltKeys { return oauthtest.Keys(t) }

func ltPEM(typ string, der []byte) []byte                    { return oauthtest.PEMBlock(typ, der) }
func ltPKCS8(t testing.TB, key any) []byte                   { return oauthtest.PKCS8PEM(t, key) }
func ltSEC1(t testing.TB, key *ecdsa.PrivateKey) []byte      { return oauthtest.SEC1PEM(t, key) }
func ltPKCS1(key *rsa.PrivateKey) []byte                     { return oauthtest.PKCS1PEM(key) }
func ltThumbprint(t testing.TB, pub crypto.PublicKey) string { return oauthtest.Thumbprint(t, pub) }

// ltWrite writes data to a new file in a test folder and returns its path.
func ltWrite(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	oauthtest.WriteFile(t, p, data)
	return p
}

type ltFormat = oauthtest.KeyFormat

func ltFormats(t testing.TB) []ltFormat { return oauthtest.KeyFormats(t) }

func TestNewKeySetFormats(t *testing.T) {
	for _, f := range ltFormats(t) {
		t.Run(f.Name, func(t *testing.T) {
			path := ltWrite(t, "key.pem", f.PEM)
			ks, err := NewKeySet([]config.SigningKey{{File: path, Alg: string(f.Alg)}})
			if err != nil {
				t.Fatalf("NewKeySet: %v", err)
			}
			active := ks.Active()
			if active.Alg != string(f.Alg) {
				t.Errorf("Alg = %q, want %q", active.Alg, f.Alg)
			}
			if want := ltThumbprint(t, f.Public); active.Kid != want {
				t.Errorf("default kid = %q, want RFC 7638 thumbprint %q", active.Kid, want)
			}

			jwks := ks.PublicJWKS()
			if len(jwks.Keys) != 1 {
				t.Fatalf("JWKS has %d keys, want 1", len(jwks.Keys))
			}
			jwk := jwks.Keys[0]
			if !jwk.IsPublic() || jwk.KeyID != active.Kid || jwk.Algorithm != string(f.Alg) || jwk.Use != "sig" {
				t.Errorf("JWK = public %v kid %q alg %q use %q", jwk.IsPublic(), jwk.KeyID, jwk.Algorithm, jwk.Use)
			}

			var raw struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(ks.PublicJWKSJSON(), &raw); err != nil {
				t.Fatalf("PublicJWKSJSON is not JSON: %v", err)
			}
			if len(raw.Keys) != 1 {
				t.Fatalf("JWKS JSON has %d keys, want 1", len(raw.Keys))
			}
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				if _, ok := raw.Keys[0][private]; ok {
					t.Errorf("JWKS JSON publishes private parameter %q", private)
				}
			}
			if raw.Keys[0]["kid"] != active.Kid || raw.Keys[0]["alg"] != string(f.Alg) || raw.Keys[0]["use"] != "sig" {
				t.Errorf("JWKS JSON key = %v", raw.Keys[0])
			}
			if got := ks.Algorithms(); len(got) != 1 || got[0] != string(f.Alg) {
				t.Errorf("Algorithms() = %v, want [%s]", got, f.Alg)
			}
		})
	}
}

func TestNewKeySetRotation(t *testing.T) {
	k := ltGetKeys(t)
	es := ltWrite(t, "es.pem", ltSEC1(t, k.P256))
	rs := ltWrite(t, "rs.pem", ltPKCS1(k.RSA2048))
	ed := ltWrite(t, "ed.pem", ltPKCS8(t, k.Ed))
	ks, err := NewKeySet([]config.SigningKey{
		{File: es, Alg: "ES256", Kid: "new"},
		{File: rs, Alg: "RS256"},
		{File: rs, Alg: "PS256", Kid: "rsa-pss"},
		{File: ed, Alg: "EdDSA"},
	})
	if err != nil {
		t.Fatalf("NewKeySet: %v", err)
	}
	if ks.Active().Kid != "new" {
		t.Errorf("Active().Kid = %q, want the first key's", ks.Active().Kid)
	}
	var kids []string
	for _, key := range ks.PublicJWKS().Keys {
		kids = append(kids, key.KeyID)
	}
	want := []string{"new", ltThumbprint(t, k.RSA2048.Public()), "rsa-pss", ltThumbprint(t, k.Ed.Public())}
	if strings.Join(kids, ",") != strings.Join(want, ",") {
		t.Errorf("published kids = %v, want %v", kids, want)
	}
	if got := strings.Join(ks.Algorithms(), ","); got != "ES256,RS256,PS256,EdDSA" {
		t.Errorf("Algorithms() = %s", got)
	}

	// Callers get copies: mutating them cannot change what is published.
	jwks := ks.PublicJWKS()
	jwks.Keys[0].KeyID = "tampered"
	ks.PublicJWKSJSON()[0] = 'X'
	ks.Algorithms()[0] = "none"
	if ks.PublicJWKS().Keys[0].KeyID != "new" || ks.PublicJWKSJSON()[0] != '{' || ks.Algorithms()[0] != "ES256" {
		t.Error("KeySet accessors expose internal state")
	}
}

func TestNewKeySetErrors(t *testing.T) {
	k := ltGetKeys(t)
	encryptedPKCS8 := ltPEM("ENCRYPTED PRIVATE KEY", []byte("not really ciphertext, never parsed"))
	encryptedLegacy := pem.EncodeToMemory(&pem.Block{
		Type:    "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   x509.MarshalPKCS1PrivateKey(k.RSA2048),
	})
	pubDER, err := x509.MarshalPKIXPublicKey(k.P256.Public())
	if err != nil {
		t.Fatal(err)
	}

	type file struct {
		data []byte // nil: the file does not exist
		alg  string
		kid  string
	}
	cases := []struct {
		name  string
		files []file
		want  []string // substrings of the error
		is    error
	}{
		{"ES256 with RSA key", []file{{ltPKCS1(k.RSA2048), "ES256", ""}}, []string{"alg ES256 needs a P-256 key, got RSA (2048 bits)"}, nil},
		{"ES256 with P-384 key", []file{{ltSEC1(t, k.P384), "ES256", ""}}, []string{"alg ES256 needs a P-256 key, got EC P-384"}, nil},
		{"RS256 with EC key", []file{{ltSEC1(t, k.P256), "RS256", ""}}, []string{"alg RS256 needs an RSA key, got EC P-256"}, nil},
		{"PS256 with Ed25519 key", []file{{ltPKCS8(t, k.Ed), "PS256", ""}}, []string{"alg PS256 needs an RSA key, got Ed25519"}, nil},
		{"EdDSA with EC key", []file{{ltPKCS8(t, k.P256), "EdDSA", ""}}, []string{"alg EdDSA needs an Ed25519 key, got EC P-256"}, nil},
		{"short RSA", []file{{ltPKCS1(k.RSA1024), "RS256", ""}}, []string{"RSA key is 1024 bits: RS256 needs at least 2048"}, nil},
		{"short RSA PS256", []file{{ltPKCS8(t, k.RSA1024), "PS256", ""}}, []string{"RSA key is 1024 bits: PS256 needs at least 2048"}, nil},
		{"unsupported alg", []file{{ltSEC1(t, k.P256), "HS256", ""}}, []string{`alg "HS256" is not supported: use ES256, RS256, PS256 or EdDSA`}, nil},
		{"alg none", []file{{ltSEC1(t, k.P256), "none", ""}}, []string{`alg "none" is not supported`}, nil},
		{"empty alg", []file{{ltSEC1(t, k.P256), "", ""}}, []string{"alg is empty: set it to ES256"}, nil},
		{"garbage", []file{{[]byte("this is not a key\n"), "ES256", ""}}, []string{"no PEM block found"}, nil},
		{"empty file", []file{{[]byte{}, "ES256", ""}}, []string{"no PEM block found"}, nil},
		{"encrypted PKCS8", []file{{encryptedPKCS8, "ES256", ""}}, []string{"encrypted PEM is not supported"}, nil},
		{"encrypted legacy PEM", []file{{encryptedLegacy, "RS256", ""}}, []string{"encrypted PEM is not supported"}, nil},
		{"public key", []file{{ltPEM("PUBLIC KEY", pubDER), "ES256", ""}}, []string{"no private key in the PEM data (found PUBLIC KEY)"}, nil},
		{"corrupt DER", []file{{ltPEM("EC PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x01}), "ES256", ""}}, []string{"parse SEC1 EC private key"}, nil},
		{"duplicate explicit kid", []file{{ltSEC1(t, k.P256), "ES256", "k1"}, {ltPKCS8(t, k.Ed), "EdDSA", "k1"}}, []string{`kid "k1" is also used by`, "give each key its own kid"}, nil},
		{"duplicate thumbprint kid", []file{{ltSEC1(t, k.P256), "ES256", ""}, {ltPKCS8(t, k.P256), "ES256", ""}}, []string{"is also used by"}, nil},
		{"missing file", []file{{nil, "ES256", ""}}, []string{"read signing key", "tokengate keys generate --alg ES256"}, fs.ErrNotExist},
		{"no keys", nil, []string{"no signing keys"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var keys []config.SigningKey
			for i, f := range tc.files {
				p := filepath.Join(dir, "k"+string(rune('0'+i))+".pem")
				if f.data != nil {
					if err := os.WriteFile(p, f.data, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				keys = append(keys, config.SigningKey{File: p, Alg: f.alg, Kid: f.kid})
			}
			ks, err := NewKeySet(keys)
			if err == nil {
				t.Fatalf("NewKeySet succeeded (active kid %q), want an error", ks.Active().Kid)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if len(keys) > 0 && !strings.Contains(msg, keys[len(keys)-1].File) {
				t.Errorf("error %q does not name the file", msg)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			for _, f := range tc.files {
				ltAssertNoKeyMaterial(t, msg, f.data)
			}
		})
	}
}

// ltAssertNoKeyMaterial fails if msg quotes any line of a PEM body.
func ltAssertNoKeyMaterial(t *testing.T, msg string, pemData []byte) {
	t.Helper()
	for line := range strings.Lines(string(pemData)) {
		line = strings.TrimSpace(line)
		if len(line) < 16 || strings.HasPrefix(line, "-----") || strings.Contains(line, ":") {
			continue
		}
		if strings.Contains(msg, line[:16]) {
			t.Fatalf("error quotes key material: %q", msg)
		}
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	k := ltGetKeys(t)
	ecParams := ltPEM("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07})
	cases := []struct {
		name    string
		data    []byte
		wantPub crypto.PublicKey // nil: an error is expected
		wantErr string
	}{
		{"SEC1", ltSEC1(t, k.P256), k.P256.Public(), ""},
		{"openssl ecparam output", append(ecParams, ltSEC1(t, k.P256)...), k.P256.Public(), ""},
		{"PKCS1", ltPKCS1(k.RSA2048), k.RSA2048.Public(), ""},
		{"PKCS8 Ed25519", ltPKCS8(t, k.Ed), k.Ed.Public(), ""},
		{"leading text", append([]byte("comment line\n"), ltPKCS8(t, k.P256)...), k.P256.Public(), ""},
		{"two keys", append(ltSEC1(t, k.P256), ltPKCS8(t, k.Ed)...), nil, "more than one private key"},
		{"X25519 cannot sign", ltPKCS8(t, k.X25519), nil, "cannot sign"},
		{"OpenSSH key", ltPEM("OPENSSH PRIVATE KEY", []byte("x")), nil, `PEM type "OPENSSH PRIVATE KEY" is not supported`},
		{"PKCS8 labelled PKCS1", ltPEM("RSA PRIVATE KEY", ltPKCS8der(t, k.RSA2048)), nil, "parse PKCS#1 RSA private key"},
		{"truncated PEM", ltSEC1(t, k.P256)[:40], nil, "no PEM block found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParsePrivateKeyPEM(tc.data)
			if tc.wantPub == nil {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				ltAssertNoKeyMaterial(t, err.Error(), tc.data)
				return
			}
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			if eq, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(tc.wantPub) {
				t.Errorf("parsed a different key")
			}
		})
	}
}

func ltPKCS8der(t testing.TB, key any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestGenerateKeyPEM(t *testing.T) {
	cases := []struct {
		alg   string
		check func(crypto.Signer) bool
	}{
		{"ES256", func(s crypto.Signer) bool {
			k, ok := s.(*ecdsa.PrivateKey)
			return ok && k.Curve == elliptic.P256()
		}},
		{"RS256", func(s crypto.Signer) bool { k, ok := s.(*rsa.PrivateKey); return ok && k.N.BitLen() == 3072 }},
		{"PS256", func(s crypto.Signer) bool { k, ok := s.(*rsa.PrivateKey); return ok && k.N.BitLen() == 3072 }},
		{"EdDSA", func(s crypto.Signer) bool { _, ok := s.(ed25519.PrivateKey); return ok }},
	}
	for _, tc := range cases {
		t.Run(tc.alg, func(t *testing.T) {
			t.Parallel()
			data, err := GenerateKeyPEM(tc.alg, nil)
			if err != nil {
				t.Fatalf("GenerateKeyPEM: %v", err)
			}
			if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
				t.Errorf("not PKCS#8 PEM: %.30q", data)
			}
			s, err := ParsePrivateKeyPEM(data)
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			if !tc.check(s) {
				t.Errorf("generated %s", signingKeyDescribe(s.Public()))
			}
			ks, err := NewKeySet([]config.SigningKey{{File: ltWrite(t, "k.pem", data), Alg: tc.alg}})
			if err != nil {
				t.Fatalf("NewKeySet of a generated key: %v", err)
			}
			if ks.Active().Alg != tc.alg {
				t.Errorf("Alg = %q", ks.Active().Alg)
			}
			again, err := GenerateKeyPEM(tc.alg, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) == string(data) {
				t.Error("two generated keys are equal")
			}
		})
	}
	t.Run("unsupported", func(t *testing.T) {
		_, err := GenerateKeyPEM("HS256", rand.Reader)
		if err == nil || !strings.Contains(err.Error(), "use ES256, RS256, PS256 or EdDSA") {
			t.Errorf("err = %v", err)
		}
	})
}

func FuzzParsePrivateKeyPEM(f *testing.F) {
	k := ltGetKeys(f)
	for _, fm := range ltFormats(f) {
		f.Add(fm.PEM)
	}
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMAMCAQE=\n-----END EC PRIVATE KEY-----\n"))
	f.Add(ltPEM("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}))
	f.Add(ltPKCS8(f, k.X25519))
	f.Add(append(ltSEC1(f, k.P384), ltPKCS1(k.RSA1024)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParsePrivateKeyPEM(data)
		if (s == nil) == (err == nil) {
			t.Fatalf("ParsePrivateKeyPEM returned signer %v and error %v", s != nil, err)
		}
	})
}
