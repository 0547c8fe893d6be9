package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzParseTokenForm: the token endpoint's form parser never panics; what it
// accepts is a complete request with a well-formed scope; what it refuses is
// a 400 with one of the RFC 6749 / RFC 8693 codes, whose description never
// repeats the subject token.
func FuzzParseTokenForm(f *testing.F) {
	good := exchangeForm(umbrella, audOrders)
	for _, seed := range []string{
		good.Encode(),
		with(good, "scope", "orders:read orders:write").Encode(),
		with(good, "audience", "a", "b").Encode(),
		with(good, "subject_token", "x", "y").Encode(),
		with(good, "grant_type", "password").Encode(),
		with(good, "scope", "a  b").Encode(),
		with(good, "resource", "https://r").Encode(),
		with(good, "actor_token", "t").Encode(),
		"",
		"&&&",
		"=",
		"grant_type=%zz",
		"a;b=c",
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=&audience=",
		"scope=%00&" + good.Encode(),
		"scope=" + url.QueryEscape("é") + "&" + good.Encode(),
		strings.Repeat("scope=a&", 50),
	} {
		f.Add(seed)
	}
	codes := []string{"invalid_request", "unsupported_grant_type", "invalid_target", "invalid_scope"}
	f.Fuzz(func(t *testing.T, body string) {
		req, err := parseTokenForm(body)
		if err != nil {
			var te *tokenRequestError
			if !errors.As(err, &te) || te.status != http.StatusBadRequest || !slices.Contains(codes, te.code) || te.description == "" {
				t.Fatalf("error %#v is not a 400 with a known code", err)
			}
			// The answer never depends on the subject token's value (only on
			// whether there is one), so it cannot repeat it.
			if form, perr := url.ParseQuery(body); perr == nil && len(form["subject_token"]) > 0 {
				for i, v := range form["subject_token"] {
					if v != "" {
						form["subject_token"][i] = "zz-other-token-zz"
					}
				}
				_, err2 := parseTokenForm(form.Encode())
				var te2 *tokenRequestError
				if !errors.As(err2, &te2) || *te2 != *te {
					t.Fatalf("the answer depends on the subject token's value: %v vs %v", err, err2)
				}
			}
			return
		}
		if req.subjectToken == "" || req.audience == "" {
			t.Fatalf("accepted an incomplete request: %+v", req)
		}
		if req.scopes != nil {
			if len(req.scopes) == 0 || !slices.IsSorted(req.scopes) || len(slices.Compact(slices.Clone(req.scopes))) != len(req.scopes) {
				t.Fatalf("scopes %q are not sorted, unique and non-empty", req.scopes)
			}
			for _, s := range req.scopes {
				if s == "" || strings.ContainsAny(s, " \"\\") || strings.IndexFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
					t.Fatalf("scope %q is not an RFC 6749 scope-token", s)
				}
			}
		}
	})
}
