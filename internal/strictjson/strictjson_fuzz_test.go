package strictjson

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"unicode/utf8"
)

// uniqueNamesDecoder is the json.Decoder token walk that
// UniqueNames replaced, kept as the reference it is fuzzed against. It
// walks data token by token, refusing anything but a single
// top-level object and any object with a repeated member name.
func uniqueNamesDecoder(data []byte) error {
	type frame struct {
		object  bool
		names   map[string]struct{}
		wantKey bool
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []frame
	started := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if !started || len(stack) != 0 {
				return ErrNotObject
			}
			return nil
		}
		if err != nil {
			return err
		}
		if !started {
			if tok != json.Delim('{') {
				return ErrNotObject
			}
			started = true
			stack = append(stack, frame{object: true, names: map[string]struct{}{}, wantKey: true})
			continue
		}
		if len(stack) == 0 {
			return ErrNotObject // a second value after the object
		}
		top := &stack[len(stack)-1]
		if top.object && top.wantKey {
			if tok == json.Delim('}') {
				stack = stack[:len(stack)-1]
				continue
			}
			name, ok := tok.(string)
			if !ok {
				return ErrNotObject
			}
			if _, dup := top.names[name]; dup {
				return ErrDuplicateName
			}
			top.names[name] = struct{}{}
			top.wantKey = false
			continue
		}
		if top.object {
			top.wantKey = true // the value just started is followed by a name or '}'
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, names: map[string]struct{}{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// FuzzUniqueNames checks the scanner against the reference walk: both
// accept exactly the same inputs (the error values may differ).
func FuzzUniqueNames(f *testing.F) {
	for _, s := range []string{
		`{}`, ` {"a":1,"b":{"a":2,"c":[{"a":1},{"a":2}]}} `, `{"a":[1,{"x":{"y":[]}}],"b":"a"}`,
		`{"a":1,"a":1}`, `{"a":1,"\u0061":2}`, `{"o":{"x":1,"x":2}}`, `{"l":[{"x":1,"x":2}]}`,
		`{"l":[{"x":1},{"y":1,"y":2}]}`, `{}{}`, `{} x`, `[]`, `"s"`, `null`, `{`, ``, "{\"a\":\"\xff\"}",
		`{"a\"b":1,"a\\\"b":2}`, `{"\"":1,"\u0022":2}`, `{"k":"v,\"k\":1"}`, `{"a":"}","a":1}`,
		`{"\ud800":1,"\ufffd":2}`, `1`, ` {"a" : [ "a" , "a" ] , "b" : { } } `,
		`{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"a3":3}`,
		`{"a0":0,"a1":1,"a2":2,"a3":3,"a4":4,"a5":5,"a6":6,"a7":7,"a8":8,"a9":9,"b0":0,"b1":1,"b2":2,"b3":3,"b4":4,"b5":5,"b6":6,"b7":7,"c0":3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want := UniqueNames(data), uniqueNamesDecoder(data)
		if (got == nil) != (want == nil) {
			t.Fatalf("UniqueNames(%q) = %v; the decoder walk says %v", data, got, want)
		}
	})
}

// BenchmarkUniqueNames compares the scanner with the decoder walk it
// replaced on a typical umbrella token payload, in one run.
func BenchmarkUniqueNames(b *testing.B) {
	payload := []byte(`{"iss":"https://idp.example.com/","sub":"user-1234567890","aud":["https://orders.example.com","https://inventory.example.com","https://billing.example.com"],` +
		`"iat":1790000000,"exp":1790003600,"nbf":1790000000,"jti":"6f1c2a9e-3b7d-4f2a-9c1e-8a7b6c5d4e3f","scope":"orders:read orders:write inventory:read billing:read",` +
		`"client_id":"web-app","azp":"web-app","amr":["pwd","mfa"],"acr":"urn:example:loa:2","auth_time":1790000000,"email":"user@example.com"}`)
	for _, bc := range []struct {
		name string
		f    func([]byte) error
	}{{"scanner", UniqueNames}, {"decoder_walk", uniqueNamesDecoder}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.f(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzObject checks Object's members against encoding/json's own decoding
// into map[string]json.RawMessage for every input Object accepts, and that
// it accepts exactly what UniqueNames accepts (valid UTF-8 given).
func FuzzObject(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { "a" : 1 , "b" : { "a" : [ 1 , 2 ] } , "c":"x,}" , "d":null,"e":true, "f" : -1.5e3 } `,
		`{"a":[1,{"x":{"y":[]}}],"b":"a"}`, `{"\u0061":"\"}"}`, `{"a":{}}`, `{"a":[]}`, `{"a":"","b":""}`,
		`{"a":1,"a":2}`, `[]`, `{"k":{"k":{"k":1}},"z":0}`, "{\"a\"\t:\n\"b\"\r}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Object(data)
		if utf8.Valid(data) && (err == nil) != (UniqueNames(data) == nil) {
			t.Fatalf("Object(%q) error %v, UniqueNames %v", data, err, UniqueNames(data))
		}
		if err != nil {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("Object accepted %q, encoding/json refuses it: %v", data, err)
		}
		if len(got) != len(want) {
			t.Fatalf("Object(%q) = %d members, encoding/json %d", data, len(got), len(want))
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("Object(%q)[%q] = %q, encoding/json %q", data, k, got[k], v)
			}
		}
	})
}
