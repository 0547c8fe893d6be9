package oauthtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// Reencode rewrites every segment of a compact JWS with enc (padding, the
// standard alphabet): the same token spelled another way, as an attacker
// or an operator pasting a copy might send it.
func Reencode(t testing.TB, raw string, enc *base64.Encoding) string {
	t.Helper()
	parts := strings.Split(raw, ".")
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = enc.EncodeToString(b)
	}
	return strings.Join(parts, ".")
}

// JSONEqual reports whether got and want are the same JSON value (member
// order and spacing aside).
func JSONEqual(t testing.TB, got json.RawMessage, want string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("unmarshal %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &b); err != nil {
		t.Fatalf("unmarshal %s: %v", want, err)
	}
	ab, _ := json.Marshal(a)
	bb, _ := json.Marshal(b)
	return bytes.Equal(ab, bb)
}
