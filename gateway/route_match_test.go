package gateway

import "testing"

func TestCleanPathHelpers(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/a": true, "/a/": true, "/a/b": true, "/a.b/..c": true,
		"": false, "a": false, "//": false, "/a//b": false, "/.": false, "/..": false,
		"/a/./b": false, "/a/../b": false, "/a/..": false, "/a/.": false,
	} {
		if got := isCleanPath(p); got != want {
			t.Errorf("isCleanPath(%q) = %v, want %v", p, got, want)
		}
		if want && cleanPath(p) != p {
			t.Errorf("cleanPath(%q) = %q changes a clean path", p, cleanPath(p))
		}
		if c := cleanPath(p); !isCleanPath(c) {
			t.Errorf("cleanPath(%q) = %q is not clean", p, c)
		}
	}
	for h, want := range map[string]string{
		"example.com": "example.com", "example.com:80": "example.com", "[::1]:8080": "::1", "[::1]": "::1", "::1": "::1",
	} {
		if got := stripPort(h); got != want {
			t.Errorf("stripPort(%q) = %q, want %q", h, got, want)
		}
	}
	if !hostEqual("Example.COM.:443", "example.com") {
		t.Error("hostEqual ignores case, port and trailing dot")
	}
}
