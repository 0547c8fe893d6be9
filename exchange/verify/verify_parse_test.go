package verify

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestVerifyNumericDate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		want time.Time
		ok   bool
	}{
		{raw: `0`, want: time.Unix(0, 0), ok: true},
		{raw: `1700000000`, want: time.Unix(1700000000, 0), ok: true},
		{raw: `-5`, want: time.Unix(-5, 0), ok: true},
		{raw: `1700000000.25`, want: time.Unix(1700000000, 25e7), ok: true},
		{raw: `1.7e9`, want: time.Unix(1700000000, 0), ok: true},
		{raw: `1E3`, want: time.Unix(1000, 0), ok: true},
		{raw: `9223372036854775807`, want: time.Unix(verifyMaxUnix, 0), ok: true},
		{raw: `-9223372036854775808`, want: time.Unix(verifyMinUnix, 0), ok: true},
		{raw: `9.2e18`, want: time.Unix(verifyMaxUnix, 0), ok: true},
		{raw: `9223372036854775808`},
		{raw: `-9223372036854775809`},
		{raw: `9.3e18`},
		{raw: `1e309`},
		{raw: `"1700000000"`},
		{raw: `true`},
		{raw: `null`},
		{raw: `[1]`},
		{raw: `{}`},
	}
	for _, tc := range tests {
		got, present, err := verifyNumericDate(map[string]json.RawMessage{"exp": json.RawMessage(tc.raw)}, "exp")
		if !present {
			t.Fatalf("%s: not present", tc.raw)
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.raw, err, tc.ok)
			continue
		}
		if tc.ok && !got.Equal(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.raw, got, tc.want)
		}
	}
	if _, present, err := verifyNumericDate(map[string]json.RawMessage{}, "nbf"); present || err != nil {
		t.Errorf("absent claim: present=%v err=%v", present, err)
	}
}

func TestVerifySplitScope(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"":             nil,
		"a":            {"a"},
		" a  b ":       {"a", "b"},
		"a\tb":         {"a\tb"},
		"orders:read ": {"orders:read"},
	}
	for in, want := range tests {
		if got := verifySplitScope(in); !slices.Equal(got, want) {
			t.Errorf("verifySplitScope(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVerifyB64Decode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{in: "eyJhIjoxfQ", ok: true},
		{in: "-_-_", ok: true},
		{in: ""},
		{in: "eyJhIjoxfQ=="},
		{in: "ab+/"},
		{in: "ab\ncd"},
		{in: "ab\rcd"},
		{in: "ab cd"},
		{in: "abc\x00"},
		{in: "a"},
		{in: "AB"}, // non-zero trailing bits
	}
	for _, tc := range tests {
		if _, err := verifyB64Decode(tc.in); (err == nil) != tc.ok {
			t.Errorf("verifyB64Decode(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}
