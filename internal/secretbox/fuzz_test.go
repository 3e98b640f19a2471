package secretbox

import (
	"strings"
	"testing"
)

// FuzzParseKeys: any NOTIFYD_SECRET_KEYS value parses or fails cleanly, and a
// parsed ring seals and opens its own values.
func FuzzParseKeys(f *testing.F) {
	f.Add("k1:" + testKey(1))
	f.Add("k2:" + testKey(2) + ",k1:" + testKey(1))
	f.Add("k1:" + testKey(1) + ",k1:" + testKey(1))
	f.Add(":,:,")
	f.Add("é:" + testKey(1))
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseKeys(s)
		if err != nil {
			return
		}
		if r.Len() == 0 {
			return
		}
		sealed, err := r.Seal("whsec_x", []byte("id"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := r.Open(sealed, []byte("id")); err != nil || got != "whsec_x" {
			t.Fatalf("round trip: %q %v", got, err)
		}
	})
}

// FuzzOpen: no stored value makes Open panic, and only a value this ring
// sealed for this record opens to something other than itself.
func FuzzOpen(f *testing.F) {
	r, err := ParseKeys("k2:" + testKey(2) + ",k1:" + testKey(1))
	if err != nil {
		f.Fatal(err)
	}
	sealed, _ := r.Seal("whsec_abc", []byte("id"))
	f.Add(sealed)
	f.Add(Prefix)
	f.Add(Prefix + "k1:")
	f.Add(Prefix + "k3:AAAA")
	f.Add("whsec_plain")
	f.Fuzz(func(t *testing.T, v string) {
		got, err := r.Open(v, []byte("id"))
		if err != nil {
			return
		}
		if !strings.HasPrefix(v, Prefix) && got != v {
			t.Fatalf("plaintext %q opened to %q", v, got)
		}
	})
}
