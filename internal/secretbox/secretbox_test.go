package secretbox

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func testKey(b byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune('a'+b)), KeySize)))
}

func TestParseKeys(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey(1), testKey(2)
	cases := []struct {
		in      string
		n       int
		current string
		err     string
	}{
		{"", 0, "", ""},
		{"k1:" + k1, 1, "k1", ""},
		{"k2:" + k2 + ", k1:" + k1, 2, "k2", ""},
		{"k2:" + strings.TrimRight(base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 32))), "="), 1, "k2", ""},
		{"k1", 0, "", "want id:base64"},
		{":" + k1, 0, "", "1 to 32"},
		{"k 1:" + k1, 0, "", "letters"},
		{"k1:" + k1 + ",k1:" + k2, 0, "", "twice"},
		{"k1:!!!", 0, "", "base64"},
		{"k1:" + base64.StdEncoding.EncodeToString([]byte("short")), 0, "", "32 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseKeys(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), k1) || strings.Contains(err.Error(), k2) {
					t.Fatalf("error quotes key material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Len() != tc.n || r.Current() != tc.current {
				t.Fatalf("len %d current %q, want %d %q", r.Len(), r.Current(), tc.n, tc.current)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	old, _ := ParseKeys("k1:" + testKey(1))
	both, _ := ParseKeys("k2:" + testKey(2) + ",k1:" + testKey(1))
	newOnly, _ := ParseKeys("k2:" + testKey(2))
	aad := []byte("receiver-a")
	sealedOld, err := old.Seal("whsec_abc", aad)
	if err != nil {
		t.Fatal(err)
	}
	sealedNew, err := both.Seal("whsec_abc", aad)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := both.Seal("whsec_abc", aad)
	if again == sealedNew {
		t.Fatal("two seals of the same secret are equal: the nonce is not random")
	}
	if strings.Contains(sealedNew, "whsec_") || KeyID(sealedNew) != "k2" || KeyID(sealedOld) != "k1" {
		t.Fatalf("sealed values %q %q", sealedOld, sealedNew)
	}
	flipped := []byte(sealedNew)
	flipped[len(flipped)-2] ^= 1
	cases := []struct {
		name  string
		ring  *Keyring
		value string
		aad   []byte
		want  string
		err   error
	}{
		{"plaintext without keys", nil, "whsec_plain", aad, "whsec_plain", nil},
		{"plaintext with keys", both, "whsec_plain", aad, "whsec_plain", nil},
		{"old key in a rotated ring", both, sealedOld, aad, "whsec_abc", nil},
		{"new key", both, sealedNew, aad, "whsec_abc", nil},
		{"retired key", newOnly, sealedOld, aad, "", ErrUnknownKey},
		{"no keys", nil, sealedNew, aad, "", ErrNoKeys},
		{"another record", both, sealedNew, []byte("receiver-b"), "", ErrCorrupt},
		{"altered", both, string(flipped), aad, "", ErrCorrupt},
		{"truncated", both, sealedNew[:len(Prefix)+5], aad, "", ErrCorrupt},
		{"no payload", both, Prefix + "k2", aad, "", ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ring.Open(tc.value, tc.aad)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Fatalf("Open = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
	if _, err := (*Keyring)(nil).Seal("x", aad); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("Seal without keys: %v", err)
	}
	for _, tc := range []struct {
		ring  *Keyring
		value string
		want  bool
	}{{both, sealedOld, true}, {both, sealedNew, false}, {both, "whsec_x", true}, {nil, "whsec_x", false}} {
		if got := tc.ring.NeedsReseal(tc.value); got != tc.want {
			t.Errorf("NeedsReseal(%q) with %d keys = %v", tc.value, tc.ring.Len(), got)
		}
	}
}
