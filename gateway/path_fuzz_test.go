package gateway

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzCheckPath: whatever checkPath accepts, a backend decoding it once or
// twice sees no ";", no "\", no encoded "/", and no control character.
func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{
		"/", "/api/admin", "/api/admin;x=1", "/api%2Fadmin", "/api%252Fadmin", "/api/%25%32%46",
		`/a\b`, "/a%5cb", "/a%00", "/a%2e%2e/b", "/100%25off", "/a%20b", "/%zz", "*",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if checkPath(raw) != nil || raw == "*" {
			return
		}
		once, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatalf("accepted %q, which does not decode: %v", raw, err)
		}
		if strings.Contains(strings.ToLower(raw), "%2f") {
			t.Fatalf("accepted an encoded slash: %q", raw)
		}
		// A second decoding must change nothing ("%of" is no escape: a
		// decoder refuses it or keeps it).
		if twice, err := url.PathUnescape(once); err == nil && twice != once {
			t.Fatalf("accepted %q, which a second decoding changes to %q", raw, twice)
		}
		for i := 0; i < len(once); i++ {
			if c := once[i]; c == ';' || c == '\\' || c < ' ' || c == 0x7f {
				t.Fatalf("accepted %q, which decodes to %q", raw, once)
			}
		}
	})
}

// alreadyFolded is foldPath's shortcut: it may only skip paths the full
// fold leaves unchanged.
func FuzzAlreadyFolded(f *testing.F) {
	for _, p := range []string{"/", "/api/v1", "/API", "/api./x", "/api /x", "/a.", "/é", "/a..b/c", ""} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			segs[i] = strings.TrimRight(strings.ToLower(s), ". ")
		}
		slow := strings.Join(segs, "/")
		if alreadyFolded(p) && slow != p {
			t.Fatalf("alreadyFolded(%q) but the fold is %q", p, slow)
		}
		if got := foldPath(p); got != slow {
			t.Fatalf("foldPath(%q) = %q, want %q", p, got, slow)
		}
	})
}
