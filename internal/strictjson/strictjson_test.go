package strictjson

import "testing"

func TestObject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{in: `{}`, ok: true},
		{in: ` {"a":1,"b":{"a":2,"c":[{"a":1},{"a":2}]}} `, ok: true},
		{in: `{"a":[1,{"x":{"y":[]}}],"b":"a"}`, ok: true},
		{in: `{"a":1,"a":1}`},
		{in: `{"a":1,"\u0061":2}`},
		{in: `{"o":{"x":1,"x":2}}`},
		{in: `{"l":[{"x":1,"x":2}]}`},
		{in: `{"l":[{"x":1},{"y":1,"y":2}]}`},
		{in: `{}{}`},
		{in: `{} x`},
		{in: `[]`},
		{in: `"s"`},
		{in: `null`},
		{in: `{`},
		{in: ``},
		{in: "{\"a\":\"\xff\"}"},
	}
	for _, tc := range tests {
		_, err := Object([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("Object(%q) err = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}
