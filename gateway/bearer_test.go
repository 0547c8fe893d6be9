package gateway

import (
	"net/http"
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name    string
		values  []string // Authorization header values; nil = absent
		want    string
		wantErr error
	}{
		{name: "absent", values: nil, wantErr: errNoBearer},
		{name: "plain", values: []string{"Bearer abc.def.ghi"}, want: "abc.def.ghi"},
		{name: "scheme case-insensitive", values: []string{"bEaReR abc"}, want: "abc"},
		{name: "several spaces", values: []string{"Bearer    abc"}, want: "abc"},
		{name: "tab", values: []string{"Bearer\tabc"}, want: "abc"},
		{name: "surrounding whitespace", values: []string{"  Bearer abc  "}, want: "abc"},
		{name: "token68 alphabet and padding", values: []string{"Bearer aZ09-._~+/=="}, want: "aZ09-._~+/=="},
		{name: "several headers", values: []string{"Bearer a", "Bearer b"}, wantErr: errSeveralHeaders},
		{name: "empty value", values: []string{""}, wantErr: errMalformedHeader},
		{name: "only spaces", values: []string{"   "}, wantErr: errMalformedHeader},
		{name: "bearer without token", values: []string{"Bearer"}, wantErr: errEmptyToken},
		{name: "bearer with spaces only", values: []string{"Bearer   "}, wantErr: errEmptyToken},
		{name: "two tokens", values: []string{"Bearer a b"}, wantErr: errSeveralCreds},
		{name: "comma", values: []string{"Bearer a,b"}, wantErr: errSeveralCreds},
		{name: "trailing comma", values: []string{"Bearer a,"}, wantErr: errSeveralCreds},
		{name: "two credentials", values: []string{"Bearer a, Basic b"}, wantErr: errSeveralCreds},
		{name: "padding inside", values: []string{"Bearer a=b"}, wantErr: errTokenNotToken68},
		{name: "only padding", values: []string{"Bearer ==="}, wantErr: errTokenNotToken68},
		{name: "quote", values: []string{`Bearer "abc"`}, wantErr: errTokenNotToken68},
		{name: "non-ASCII", values: []string{"Bearer abcé"}, wantErr: errTokenNotToken68},
		{name: "Basic alone", values: []string{"Basic dXNlcjpwYXNz"}, wantErr: errNoBearer},
		{name: "scheme alone", values: []string{"Negotiate"}, wantErr: errNoBearer},
		{name: "bearer glued to token", values: []string{"Bearerabc"}, wantErr: errNoBearer},
		{name: "other scheme with params", values: []string{`Digest username="a", realm="b"`}, wantErr: errSchemeWithParams},
		{name: "other scheme then bearer", values: []string{"Basic a, Bearer b"}, wantErr: errSchemeWithParams},
		{name: "bad scheme", values: []string{"Bea(rer abc"}, wantErr: errMalformedHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.values != nil {
				h["Authorization"] = tc.values
			}
			got, err := bearerToken(h)
			if err != tc.wantErr {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("token = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzBearer checks the parser's invariants on any header value: it never
// panics; a token it returns is a non-empty token68 that appears verbatim in
// the header after a case-insensitive "Bearer" scheme; errors are only the
// known ones.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{
		"Bearer abc", "bearer a.b.c", "Bearer", "Bearer  a b", "Bearer a,b", "Basic x",
		"Bearer ==", "Bearer a==", `Digest a="b"`, "", " ", "\tBearer\tx\t", "Bearer é",
		"Bearer " + umbrella,
	} {
		f.Add(s)
	}
	known := map[error]bool{
		errNoBearer: true, errSeveralHeaders: true, errMalformedHeader: true, errSeveralCreds: true,
		errEmptyToken: true, errTokenNotToken68: true, errSchemeWithParams: true,
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := bearerToken(http.Header{"Authorization": {v}})
		if err != nil {
			if !known[err] {
				t.Fatalf("unknown error %v", err)
			}
			if got != "" {
				t.Fatalf("token %q returned with an error", got)
			}
			return
		}
		if !isToken68(got) {
			t.Fatalf("token %q is not token68", got)
		}
		trimmed := strings.Trim(v, " \t")
		if len(trimmed) < 7 || !strings.EqualFold(trimmed[:6], "bearer") {
			t.Fatalf("accepted %q without a Bearer scheme", v)
		}
		if !strings.HasSuffix(trimmed, got) || len(trimmed) == 6+len(got) ||
			strings.TrimRight(trimmed[6:len(trimmed)-len(got)], " \t") != "" {
			t.Fatalf("token %q is not the one credential of %q", got, v)
		}
	})
}

func BenchmarkBearer(b *testing.B) {
	h := http.Header{"Authorization": {"Bearer " + umbrella}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bearerToken(h); err != nil {
			b.Fatal(err)
		}
	}
}

// bearerToken is accessToken for the Bearer scheme alone: a DPoP credential
// is no bearer token.
func bearerToken(h http.Header) (string, error) {
	scheme, tok, err := accessToken(h)
	if err == nil && scheme != schemeBearer {
		return "", errNoBearer
	}
	return tok, err
}
