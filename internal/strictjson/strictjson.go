// Package strictjson reads JSON the way security checks need it: one
// object, valid UTF-8, and member names unique at every depth, so no two
// parsers of the same bytes can disagree on what a token or a proof says.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"unicode/utf8"
)

// Errors of Object and UniqueNames.
var (
	ErrNotObject     = errors.New("not a JSON object")
	ErrDuplicateName = errors.New("duplicate member name")
	ErrInvalidUTF8   = errors.New("invalid UTF-8")
)

// Object decodes data as one JSON object and returns its members.
// Member names must be unique at every depth: parsers disagree on which of
// two duplicates wins, and another reader of the same bytes (go-jose, an
// upstream) may take a different one than we did.
func Object(data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, ErrInvalidUTF8
	}
	if err := UniqueNames(data); err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, ErrNotObject
	}
	return m, nil
}

// UniqueNames refuses anything but a single top-level object and any
// object with a repeated member name. json.Valid checks the syntax first, so
// the scan below only has to follow strings and nesting; it does not
// allocate for names without escapes (the common case), which the
// json.Decoder token walk it replaces did for every token. Escaped names are
// unescaped before comparing, so "a" and "\u0061" are the same name.
func UniqueNames(data []byte) error {
	if !json.Valid(data) {
		return ErrNotObject
	}
	type frame struct {
		object  bool
		wantKey bool
		names   [][]byte // few members: a linear search beats a map
		set     map[string]struct{}
	}
	const linearNames = 16
	var stack []frame
	first := true
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '{', '[':
			if first && c != '{' {
				return ErrNotObject
			}
			first = false
			stack = append(stack, frame{object: c == '{', wantKey: c == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if top := &stack[len(stack)-1]; top.object {
				top.wantKey = true
			}
		case '"':
			if first {
				return ErrNotObject
			}
			j := i + 1
			escaped := false
			for data[j] != '"' {
				if data[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			top := &stack[len(stack)-1]
			if top.object && top.wantKey {
				top.wantKey = false
				name := data[i+1 : j] // points into data: no copy
				if escaped {
					var n string
					if err := json.Unmarshal(data[i:j+1], &n); err != nil {
						return err
					}
					name = []byte(n)
				}
				if top.set == nil {
					if slices.ContainsFunc(top.names, func(n []byte) bool { return bytes.Equal(n, name) }) {
						return ErrDuplicateName
					}
					top.names = append(top.names, name)
					if len(top.names) > linearNames {
						top.set = make(map[string]struct{}, 2*len(top.names))
						for _, n := range top.names {
							top.set[string(n)] = struct{}{}
						}
						top.names = nil
					}
				} else {
					if _, dup := top.set[string(name)]; dup {
						return ErrDuplicateName
					}
					top.set[string(name)] = struct{}{}
				}
			}
			i = j
		case ' ', '\t', '\n', '\r', ':':
		default:
			if first { // a number or a literal at the top level
				return ErrNotObject
			}
		}
	}
	if first {
		return ErrNotObject
	}
	return nil
}
