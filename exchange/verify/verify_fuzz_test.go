package verify

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/tokengate/tokengate/config"
	"github.com/tokengate/tokengate/exchange"
	"github.com/tokengate/tokengate/internal/oauthtest"
)

// vtFuzzVerifier serves key's JWKS and returns a verifier for vtFuzzIssuer.
func vtFuzzVerifier(tb testing.TB, key oauthtest.Key) (*Verifier, *vtClock) {
	tb.Helper()
	idp := oauthtest.NewIdP(tb)
	idp.SetKeys(key)
	clock := vtNewClock()
	v, err := NewVerifier([]config.Issuer{{
		Issuer:           vtFuzzIssuer,
		JWKSURI:          idp.JWKSURL(),
		Leeway:           config.Duration(30 * time.Second),
		UmbrellaAudience: vtAudUmbrella,
	}}, VerifierOptions{HTTPClient: idp.Client(), Clock: clock.Now, MaxTokenBytes: 4096})
	if err != nil {
		tb.Fatal(err)
	}
	return v, clock
}

// vtFuzzKeyPEM is a fixed ES256 key so that seed files in
// testdata/fuzz/FuzzVerify can hold tokens that verify. Test use only.
const vtFuzzKeyPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9y4LSRH+GXZC0JbV
R/m3/cTBU/3LoD0S/LHEHXitQZOhRANCAATYHrd9VgW7/cmNC8vwoFUvMsp0DBGl
x7HfxX5Eb11hh8g/hC32WqGhfnawnScxh2gr0qFB46/5WQyPGn1wo7Q7
-----END PRIVATE KEY-----`

const vtFuzzIssuer = "https://idp.fuzz.example"

func vtFuzzKey(t testing.TB) oauthtest.Key {
	t.Helper()
	block, _ := pem.Decode([]byte(vtFuzzKeyPEM))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return oauthtest.Key{Alg: "ES256", KID: "fuzz", Signer: k.(crypto.Signer)}
}

// FuzzVerify: Verify never panics, fails with a classified error that does
// not contain the input, and accepts only what an independent go-jose check
// with the issuer's key also accepts (anything else is garbage).
func FuzzVerify(f *testing.F) {
	key := vtFuzzKey(f)
	v, clock := vtFuzzVerifier(f, key)
	now := clock.Now().Unix()
	claims := map[string]any{"iss": vtFuzzIssuer, "aud": []string{vtAudOrders}, "exp": now + 3600, "iat": now, "sub": "u", "scope": "a b"}
	valid := key.Sign(f, nil, claims)
	h, rest, _ := strings.Cut(valid, ".")
	p, s, _ := strings.Cut(rest, ".")
	for _, seed := range []string{
		valid,
		key.Sign(f, map[string]any{"jku": "http://127.0.0.1:1/jwks", "typ": "at+jwt"}, claims),
		h + "." + p + "." + s + "=",
		h + ".." + s,
		h + "." + p,
		h + "." + p + "." + s + "." + s + "." + s,
		strings.ToUpper(valid),
		h + "." + vtB64(`{"iss":"`+vtFuzzIssuer+`","exp":1e400}`) + "." + s,
		vtB64(`{"alg":"none"}`) + "." + p + ".",
		vtB64(`{"alg":"ES256","crit":["b64"],"b64":false}`) + "." + p + "." + s,
		vtHS256(f, key.Signer.Public(), "fuzz", string(vtMustDecodeTB(f, p))),
	} {
		f.Add(seed)
	}
	pub := key.Signer.Public()
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(context.Background(), raw, vtAudOrders)
		if err != nil {
			if tok != nil {
				t.Fatal("token and error both returned")
			}
			if !errors.Is(err, exchange.ErrInvalidToken) && !errors.Is(err, exchange.ErrKeysUnavailable) {
				t.Fatalf("unclassified error: %v", err)
			}
			if len(raw) >= 24 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error contains the input: %v", err)
			}
			return
		}
		// Accepted: it must be a compact JWS signed by the issuer's key...
		if strings.ContainsAny(raw, " \t\r\n=") {
			t.Fatalf("accepted a token with whitespace or padding: %q", raw)
		}
		jws, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("accepted a token go-jose cannot parse: %v", err)
		}
		var c struct {
			Iss string          `json:"iss"`
			Aud json.RawMessage `json:"aud"`
			Exp float64         `json:"exp"`
		}
		if err := jws.Claims(pub, &c); err != nil {
			t.Fatalf("accepted a token whose signature go-jose rejects: %v", err)
		}
		// ...with the claims the verifier reported.
		if c.Iss != vtFuzzIssuer || tok.Claims.Issuer != vtFuzzIssuer || tok.SubjectToken() != raw {
			t.Fatalf("accepted iss %q / %q", c.Iss, tok.Claims.Issuer)
		}
		if float64(clock.Now().Unix()) >= c.Exp+30 {
			t.Fatalf("accepted an expired token (exp %v)", c.Exp)
		}
		if !slices.Contains(tok.Claims.Audience, vtAudOrders) && !slices.Contains(tok.Claims.Audience, vtAudUmbrella) {
			t.Fatalf("accepted audience %q", tok.Claims.Audience)
		}
	})
}

func vtMustDecodeTB(t testing.TB, s string) []byte {
	t.Helper()
	b, err := verifyB64Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyFuzzSeeds pins what each checked-in seed is, so the corpus keeps
// covering both accepted and rejected paths.
func TestVerifyFuzzSeeds(t *testing.T) {
	t.Parallel()
	v, _ := vtFuzzVerifier(t, vtFuzzKey(t))
	want := map[string]string{ // "" means accepted
		"valid": "", "valid_umbrella": "", "no_kid": "", "jku": "", "exp_fraction": "",
		"unknown_kid": exchange.ReasonUnknownKey, "jwe": exchange.ReasonMalformed, "alg_none": exchange.ReasonMalformed, // empty signature segment
		"crit": exchange.ReasonCrit, "dup_header": exchange.ReasonMalformed, "dup_claim": exchange.ReasonMalformed,
		"exp_string": exchange.ReasonMalformed, "exp_overflow": exchange.ReasonMalformed, "padded": exchange.ReasonMalformed,
		"newline": exchange.ReasonMalformed, "hs256_confusion": exchange.ReasonAlgorithm, "nested_dup": exchange.ReasonMalformed,
		"empty": exchange.ReasonMalformed, "dots": exchange.ReasonMalformed,
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// corpus_* seeds are cmd/tokengate's adversarial corpus (signed by keys
	// this verifier does not know): each must be rejected, whatever the reason.
	corpus := 0
	for _, ent := range entries {
		if strings.HasPrefix(ent.Name(), "corpus_") {
			corpus++
		}
	}
	if len(entries)-corpus != len(want) {
		t.Errorf("%d seed files, want %d", len(entries)-corpus, len(want))
	}
	for _, ent := range entries {
		t.Run(ent.Name(), func(t *testing.T) {
			reason, ok := want[ent.Name()]
			isCorpus := strings.HasPrefix(ent.Name(), "corpus_")
			if !ok && !isCorpus {
				t.Fatalf("seed %s has no expectation", ent.Name())
			}
			b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
			if err != nil {
				t.Fatal(err)
			}
			body, found := strings.CutPrefix(string(b), "go test fuzz v1\nstring(")
			if !found {
				t.Fatalf("not a fuzz seed file: %q", b)
			}
			raw, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(body), ")"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), raw, vtAudOrders)
			if isCorpus {
				if !errors.Is(err, exchange.ErrInvalidToken) {
					t.Fatalf("corpus seed: Verify = %v, want an invalid token", err)
				}
				return
			}
			if reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			vtWantReject(t, err, reason, raw)
		})
	}
}
