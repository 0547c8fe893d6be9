package cache

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

func TestEntryCodecRoundTrip(t *testing.T) {
	tests := []Entry{
		{},
		{Token: "t", ExpiresAt: time.Unix(1, 5).UTC()},
		{Token: "tok", TokenType: "tt", Scope: "a b", IssuedAt: time.Unix(1900000000, 999999999).UTC(),
			ExpiresAt: time.Unix(1900000300, 0).UTC(), Capped: true, SubjectHash: "\x00\xff", SessionHash: "s", TokenHash: "u"},
	}
	for _, e := range tests {
		got, err := decodeEntry(encodeEntry(&e))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", e, err)
		}
		if !got.IssuedAt.Equal(e.IssuedAt) || !got.ExpiresAt.Equal(e.ExpiresAt) {
			t.Errorf("times: got %v %v; want %v %v", got.IssuedAt, got.ExpiresAt, e.IssuedAt, e.ExpiresAt)
		}
		got.IssuedAt, got.ExpiresAt, e.IssuedAt, e.ExpiresAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("got %+v; want %+v", got, e)
		}
	}
}

func TestMessageCodecRoundTrip(t *testing.T) {
	at := time.Unix(1900000000, 0).UTC()
	for _, m := range []*message{
		{origin: "o", revocation: &Revocation{By: BySession, Hash: "h", At: at, Until: at.Add(time.Hour)}},
		{origin: "o", deleteKey: "\x00key"},
	} {
		got, err := decodeMessage(encodeMessage(m))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("got %+v; want %+v", got, m)
		}
	}
}

func TestKeyringRejects(t *testing.T) {
	k := bytes.Repeat([]byte{7}, KeySize)
	tests := []struct {
		name string
		hash []byte
		keys [][]byte
	}{
		{"no key", nil, nil},
		{"short key", nil, [][]byte{k[:16]}},
		{"short hash key", k[:31], [][]byte{k}},
		{"duplicate", nil, [][]byte{k, k}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewKeyring(tt.hash, tt.keys...); err == nil {
				t.Error("NewKeyring succeeded; want an error")
			}
		})
	}
	for _, s := range []string{"", "not base64!", "c2hvcnQ="} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) succeeded", s)
		}
	}
}

func TestSealBindsName(t *testing.T) {
	k, err := NewKeyring(nil, bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.seal([]byte("secret"), "name-a")
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := k.open(sealed, "name-a"); err != nil || string(pt) != "secret" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	if _, err := k.open(sealed, "name-b"); err == nil {
		t.Error("a value opened under another name")
	}
	edited := bytes.Clone(sealed)
	edited[1] ^= 1 // the key id
	if _, err := k.open(edited, "name-a"); err == nil {
		t.Error("a value with an edited header opened")
	}
}

// FuzzDecode: the decoders never panic and never accept trailing bytes.
func FuzzDecode(f *testing.F) {
	e := Entry{Token: "tok", TokenType: "tt", Scope: "s", ExpiresAt: time.Unix(1900000000, 0), SubjectHash: "h"}
	f.Add(encodeEntry(&e))
	f.Add(encodeMessage(&message{origin: "o", deleteKey: "k"}))
	f.Add(encodeMessage(&message{origin: "o", revocation: &Revocation{By: BySubject, Hash: "h", At: time.Unix(0, 0), Until: time.Unix(9, 0)}}))
	f.Add([]byte{entryFormat, 0, 0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := decodeEntry(b); err == nil {
			if again := encodeEntry(&e); !bytes.Equal(again, b) {
				// Varints have one canonical form here; a different re-encoding
				// means two byte strings decode the same.
				if _, err := decodeEntry(again); err != nil {
					t.Fatalf("re-encoding of a decoded entry does not decode: %v", err)
				}
			}
		}
		_, _ = decodeMessage(b)
		_, _ = decodeStoredRevocation(b)
	})
}
