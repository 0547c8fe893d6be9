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

// Object decodes data as one JSON object and returns its members, found
// by the same scan that checks the names (no second decoding pass); the
// values point into data, which the caller must not change afterwards.
// Member names must be unique at every depth: parsers disagree on which of
// two duplicates wins, and another reader of the same bytes (go-jose, an
// upstream) may take a different one than we did.
func Object(data []byte) (map[string]json.RawMessage, error) {
	if !utf8.Valid(data) {
		return nil, ErrInvalidUTF8
	}
	members := make(map[string]json.RawMessage)
	if err := scan(data, members); err != nil {
		return nil, err
	}
	return members, nil
}

// UniqueNames refuses anything but a single top-level object and any
// object with a repeated member name. json.Valid checks the syntax first, so
// the scan below only has to follow strings and nesting; it does not
// allocate for names without escapes (the common case), which the
// json.Decoder token walk it replaces did for every token. Escaped names are
// unescaped before comparing, so "a" and "\u0061" are the same name.
func UniqueNames(data []byte) error { return scan(data, nil) }

// scan is UniqueNames; with members non-nil it also fills members with the
// top-level object's members (name unescaped, value as its raw bytes
// without surrounding white space, as json.Unmarshal into
// map[string]json.RawMessage would), so Object needs no second decoding
// pass. The values point into data.
func scan(data []byte, members map[string]json.RawMessage) error {
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
	// The top-level member being read: its name, and where its value
	// starts (-1 until the first byte after the colon).
	var (
		member      string
		inValue     bool
		valueStart  = -1
		memberValue = func(end int) {
			if members != nil && inValue {
				members[member] = data[valueStart:end]
			}
			inValue, valueStart = false, -1
		}
	)
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inValue && valueStart < 0 && !isSpace(c) {
			valueStart = i
		}
		switch c {
		case '{', '[':
			if first && c != '{' {
				return ErrNotObject
			}
			first = false
			stack = append(stack, frame{object: c == '{', wantKey: c == '{'})
		case '}', ']':
			if len(stack) == 1 {
				memberValue(lastNonSpace(data, i))
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 1 && inValue {
				memberValue(i + 1) // a nested value ends the member
			}
		case ',':
			if len(stack) == 1 {
				memberValue(lastNonSpace(data, i))
			}
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
				if members != nil && len(stack) == 1 {
					member = string(name)
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
			if len(stack) == 1 && inValue && valueStart == i {
				memberValue(j + 1) // a string value ends the member
			}
			i = j
		case ':':
			if len(stack) == 1 {
				inValue, valueStart = true, -1
			}
		case ' ', '\t', '\n', '\r':
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

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// lastNonSpace is the end of the value before data[i] (a ',' or the closing
// brace), white space trimmed.
func lastNonSpace(data []byte, i int) int {
	for i > 0 && isSpace(data[i-1]) {
		i--
	}
	return i
}
