package cache

import (
	"reflect"
	"testing"
	"time"
)

// TestRevocationCodecV2: a revocation carries its display value and when it
// was made through pub/sub and the stored denylist, and the first encoding
// (from an older replica) still decodes.
func TestRevocationCodecV2(t *testing.T) {
	at := time.Unix(1900000000, 5).UTC()
	for _, by := range Fields {
		r := &Revocation{By: by, Hash: "h", At: at, Until: at.Add(time.Hour), Made: at.Add(time.Second), Value: "https://idp kid-1"}
		got, err := decodeStoredRevocation(encodeStoredRevocation(r))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("%s: stored round trip = %+v, %v; want %+v", by, got, err, r)
		}
		m, err := decodeMessage(encodeMessage(&message{origin: "o", revocation: r}))
		if err != nil || !reflect.DeepEqual(m.revocation, r) {
			t.Errorf("%s: message round trip = %+v, %v", by, m, err)
		}
	}
	// The V1 layout: format, field, hash, at, until.
	v1 := &Revocation{By: BySubject, Hash: "h", At: at, Until: at.Add(time.Hour)}
	b := []byte{revocationFormat, byte(v1.By)}
	b = appendString(b, v1.Hash)
	b = appendTime(b, v1.At)
	b = appendTime(b, v1.Until)
	got, err := decodeStoredRevocation(b)
	if err != nil || !reflect.DeepEqual(got, v1) || !got.MadeAt().Equal(at) {
		t.Errorf("V1 stored revocation = %+v, %v; want %+v", got, err, v1)
	}
	if _, err := decodeStoredRevocation(append(encodeStoredRevocation(v1), 0)); err == nil {
		t.Error("a trailing byte decoded")
	}
	if _, err := decodeStoredRevocation(encodeStoredRevocation(&Revocation{By: fieldMax + 1, Hash: "h", At: at, Until: at})); err == nil {
		t.Error("an unknown field decoded")
	}
}

// TestEntryCodecExtended: the four hashes added for incident response
// round-trip, and an entry without them keeps the first encoding.
func TestEntryCodecExtended(t *testing.T) {
	at := time.Unix(1900000000, 0).UTC()
	e := Entry{Token: "t", IssuedAt: at, ExpiresAt: at.Add(time.Minute), TokenHash: "x",
		ClientHash: "c", IssuerHash: "i", KeyHash: "k", SigningKeyHash: "s"}
	got, err := decodeEntry(encodeEntry(&e))
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Errorf("extended entry = %+v, %v; want %+v", got, err, e)
	}
	plain := Entry{Token: "t", IssuedAt: at, ExpiresAt: at.Add(time.Minute), Capped: true}
	b := encodeEntry(&plain)
	if b[1] != 1 {
		t.Errorf("an entry without the new hashes has flags %#x; want the first encoding's 0x1", b[1])
	}
}

// TestDenylistListAndFields: every field is remembered, listed with its
// value, oldest first; ByIssuer refuses by iat before its cut-off; a
// revocation added again keeps its value and lists the later Made.
func TestDenylistListAndFields(t *testing.T) {
	now := time.Unix(1900000000, 0)
	d := NewDenylist(func() time.Time { return now })
	for i, by := range Fields {
		made := now.Add(time.Duration(i) * time.Second)
		d.Add(Revocation{By: by, Hash: "h" + by.String(), At: made, Made: made, Until: now.Add(time.Hour), Value: by.String() + "-value"})
	}
	list := d.List()
	if len(list) != len(Fields) {
		t.Fatalf("listed %d; want %d", len(list), len(Fields))
	}
	for i, r := range list {
		if r.By != Fields[i] || r.Value != Fields[i].String()+"-value" {
			t.Errorf("list[%d] = %+v", i, r)
		}
	}
	cut := now.Add(-time.Minute)
	d.Add(Revocation{By: ByIssuer, Hash: "iss", At: cut.Add(-time.Nanosecond), Made: now, Until: now.Add(time.Hour), Value: "https://idp"})
	for _, tc := range []struct {
		iat  time.Time
		want bool
	}{{cut.Add(-time.Second), true}, {cut, false}, {cut.Add(time.Second), false}, {time.Time{}, true}} {
		if got := d.Revoked(ByIssuer, "iss", tc.iat); got != tc.want {
			t.Errorf("iss revoked for iat %v = %v; want %v", tc.iat, got, tc.want)
		}
	}
	d.Add(Revocation{By: ByClient, Hash: "h" + ByClient.String(), At: now.Add(time.Hour / 2), Until: now.Add(time.Hour)})
	for _, r := range d.List() {
		if r.By == ByClient && (r.Value != "client_id-value" || !r.MadeAt().Equal(now.Add(time.Hour/2))) {
			t.Errorf("re-added client revocation = %+v; want its value kept and the later Made", r)
		}
	}
}
