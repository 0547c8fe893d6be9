package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The plaintext encodings sealed into Redis values and pub/sub messages:
// compact, versioned by the first byte, and strict (trailing bytes fail).

const (
	entryFormat      byte = 1
	revocationFormat byte = 2
	deleteFormat     byte = 3
	// revocationFormatV2 adds Made and Value to a revocation. A replica
	// older than it cannot open it (logged, ignored): upgrade every replica
	// before relying on revocations made by new ones.
	revocationFormatV2 byte = 4
)

// entryExtended is the entry flag saying the four hashes added after the
// first encoding (client, issuer, key, signing key) follow. An entry
// without them decodes as before.
const entryExtended byte = 2

var errCorrupt = errors.New("corrupt encoding")

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeEntry is the plaintext of a Redis value.
func encodeEntry(e *Entry) []byte {
	ext := []string{e.ClientHash, e.IssuerHash, e.KeyHash, e.SigningKeyHash}
	b := make([]byte, 0, 48+len(e.Token)+len(e.TokenType)+len(e.Scope)+len(e.SubjectHash)+len(e.SessionHash)+len(e.TokenHash)+
		len(e.ClientHash)+len(e.IssuerHash)+len(e.KeyHash)+len(e.SigningKeyHash))
	var flags byte
	if e.Capped {
		flags |= 1
	}
	extended := e.ClientHash != "" || e.IssuerHash != "" || e.KeyHash != "" || e.SigningKeyHash != ""
	if extended {
		flags |= entryExtended
	}
	b = append(b, entryFormat, flags)
	b = appendTime(b, e.IssuedAt)
	b = appendTime(b, e.ExpiresAt)
	for _, s := range []string{e.Token, e.TokenType, e.Scope, e.SubjectHash, e.SessionHash, e.TokenHash} {
		b = appendString(b, s)
	}
	if extended {
		for _, s := range ext {
			b = appendString(b, s)
		}
	}
	return b
}

// decoder reads an encoding, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errCorrupt
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if d.err != nil || nsec >= uint64(time.Second) {
		d.err = errCorrupt
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	if d.err != nil {
		return fmt.Errorf("decode %s: %w", what, d.err)
	}
	return nil
}

func decodeEntry(b []byte) (Entry, error) {
	d := &decoder{b: b}
	if d.byte() != entryFormat {
		return Entry{}, fmt.Errorf("decode entry: %w: not an entry", errCorrupt)
	}
	flags := d.byte()
	e := Entry{Capped: flags&1 != 0}
	e.IssuedAt = d.time()
	e.ExpiresAt = d.time()
	e.Token = d.string()
	e.TokenType = d.string()
	e.Scope = d.string()
	e.SubjectHash = d.string()
	e.SessionHash = d.string()
	e.TokenHash = d.string()
	if flags&entryExtended != 0 {
		e.ClientHash = d.string()
		e.IssuerHash = d.string()
		e.KeyHash = d.string()
		e.SigningKeyHash = d.string()
	}
	if flags&^(1|entryExtended) != 0 {
		d.err = errCorrupt
	}
	return e, d.end("entry")
}

// message is what replicas tell each other on the revocations channel:
// a revocation, or the deletion of one cache key (an upstream answered 401
// to its token). Origin lets a replica skip its own messages.
type message struct {
	origin     string
	revocation *Revocation
	deleteKey  string
}

// encodeRevocation appends r in the V2 layout (the caller writes
// revocationFormatV2 before it): the V1 fields, then Made and Value.
func encodeRevocation(b []byte, r *Revocation) []byte {
	b = append(b, byte(r.By))
	b = appendString(b, r.Hash)
	b = appendTime(b, r.At)
	b = appendTime(b, r.Until)
	b = appendTime(b, r.Made)
	return appendString(b, r.Value)
}

// revocation reads a revocation in the layout of format (V1 or V2).
func (d *decoder) revocation(format byte) *Revocation {
	r := &Revocation{By: Field(d.byte())}
	r.Hash = d.string()
	r.At = d.time()
	r.Until = d.time()
	if format == revocationFormatV2 {
		r.Made = d.time()
		r.Value = d.string()
	}
	if d.err == nil && (!r.By.valid() || r.Hash == "") {
		d.err = errCorrupt
	}
	return r
}

func encodeMessage(m *message) []byte {
	var b []byte
	if m.revocation != nil {
		b = append(b, revocationFormatV2)
		b = appendString(b, m.origin)
		return encodeRevocation(b, m.revocation)
	}
	b = append(b, deleteFormat)
	b = appendString(b, m.origin)
	return appendString(b, m.deleteKey)
}

func decodeMessage(b []byte) (*message, error) {
	d := &decoder{b: b}
	m := &message{}
	switch f := d.byte(); f {
	case revocationFormat, revocationFormatV2:
		m.origin = d.string()
		m.revocation = d.revocation(f)
	case deleteFormat:
		m.origin = d.string()
		m.deleteKey = d.string()
	default:
		d.err = errCorrupt
	}
	return m, d.end("message")
}

// encodeStoredRevocation is a denylist value in Redis.
func encodeStoredRevocation(r *Revocation) []byte {
	return encodeRevocation([]byte{revocationFormatV2}, r)
}

func decodeStoredRevocation(b []byte) (*Revocation, error) {
	d := &decoder{b: b}
	f := d.byte()
	if f != revocationFormat && f != revocationFormatV2 {
		d.err = errCorrupt
	}
	r := d.revocation(f)
	return r, d.end("revocation")
}
