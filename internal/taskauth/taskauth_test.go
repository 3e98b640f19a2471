package taskauth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func secret(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func mustParse(t testing.TB, spec string) *Keyring {
	t.Helper()
	k, err := Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, spec, wantErr string
		signer              string
	}{
		{name: "empty", spec: "", signer: ""},
		{name: "one", spec: "k1:" + secret(1), signer: "k1"},
		{name: "rotation, first signs", spec: "k2:" + secret(2) + ", k1:" + secret(1), signer: "k2"},
		{name: "url alphabet unpadded", spec: "k1:" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), signer: "k1"},
		{name: "no id", spec: secret(1), wantErr: "want id:base64-secret"},
		{name: "short", spec: "k1:" + base64.StdEncoding.EncodeToString([]byte("short")), wantErr: "at least 32"},
		{name: "not base64", spec: "k1:!!!!", wantErr: "not base64"},
		{name: "bad id", spec: "k 1:" + secret(1), wantErr: "only letters"},
		{name: "duplicate id", spec: "k1:" + secret(1) + ",k1:" + secret(2), wantErr: "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := Parse(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), secret(1)[5:]) {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := k.SigningKeyID(); got != tc.signer {
				t.Fatalf("signing key = %q, want %q", got, tc.signer)
			}
		})
	}
}

// TestOpen performs every forgery a Redis writer without the key can try,
// and the rotation: the old key still verifies, the new one signs.
func TestOpen(t *testing.T) {
	const typ = "notify:deliver"
	body := []byte(`{"id":"x","payload":{"amount":100}}`)
	old := mustParse(t, "k1:"+secret(1))
	rotated := mustParse(t, "k2:"+secret(2)+",k1:"+secret(1))
	wrong := mustParse(t, "k1:"+secret(9))
	sealedOld := old.Seal(typ, body)
	sealedNew := rotated.Seal(typ, body)
	altered := bytes.Replace(sealedNew, []byte("100"), []byte("999"), 1)
	// The MAC's last character with one of its two unused bits flipped: a
	// lenient decoder reads the same MAC from it.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	respelled := bytes.Clone(sealedNew)
	respelled[len(respelled)-1] = alphabet[strings.IndexByte(alphabet, respelled[len(respelled)-1])^1]
	for _, tc := range []struct {
		name    string
		k       *Keyring
		typ     string
		payload []byte
		wantErr error
	}{
		{name: "signed", k: rotated, typ: typ, payload: sealedNew},
		{name: "old key still verifies", k: rotated, typ: typ, payload: sealedOld},
		{name: "unsigned refused", k: rotated, typ: typ, payload: body, wantErr: ErrUnsigned},
		{name: "wrong secret same id", k: rotated, typ: typ, payload: wrong.Seal(typ, body), wantErr: ErrBadMAC},
		{name: "altered body", k: rotated, typ: typ, payload: altered, wantErr: ErrBadMAC},
		{name: "other task type", k: rotated, typ: "other", payload: sealedNew, wantErr: ErrBadMAC},
		{name: "retired key", k: mustParse(t, "k3:"+secret(3)), typ: typ, payload: sealedOld, wantErr: ErrUnknownKey},
		{name: "truncated mac", k: rotated, typ: typ, payload: sealedNew[:len(sealedNew)-1], wantErr: ErrBadMAC},
		{name: "mac spelled another way", k: rotated, typ: typ, payload: respelled, wantErr: ErrBadMAC},
		{name: "no keys: unsigned accepted", k: nil, typ: typ, payload: body},
		{name: "no keys: trailer stripped", k: nil, typ: typ, payload: sealedNew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.k.Open(tc.typ, tc.payload)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && !bytes.Equal(got, body) {
				t.Fatalf("body = %q, want %q", got, body)
			}
		})
	}
	if !bytes.HasPrefix(sealedNew[len(body):], []byte("\nnt1.k2.")) {
		t.Fatalf("the first key must sign: %q", sealedNew[len(body):])
	}
}

// FuzzOpen: no payload makes Open panic, and only what Seal produced opens.
func FuzzOpen(f *testing.F) {
	k := mustParse(f, "k2:"+secret(2)+",k1:"+secret(1))
	f.Add([]byte(`{"a":1}`))
	f.Add(k.Seal("t", []byte(`{"a":1}`)))
	f.Add([]byte("{}\nnt1.k1."))
	f.Add([]byte("\nnt1..AAAA"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		body, err := k.Open("t", payload)
		if err != nil {
			return
		}
		if !bytes.Equal(k.Seal("t", body), payload) && !bytes.Equal(mustParse(t, "k1:"+secret(1)).Seal("t", body), payload) {
			t.Fatalf("opened a payload no key sealed: %q", payload)
		}
	})
}

// FuzzParse: key specs never panic, and an accepted key id is valid.
func FuzzParse(f *testing.F) {
	f.Add("k1:" + secret(1))
	f.Add("a:b,c:d")
	f.Add(":,")
	f.Fuzz(func(t *testing.T, spec string) {
		k, err := Parse(spec)
		if err != nil || !k.Signing() {
			return
		}
		if ValidKeyID(k.SigningKeyID()) != nil {
			t.Fatalf("accepted invalid key id %q", k.SigningKeyID())
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	k := mustParse(b, "k1:"+secret(1))
	body := bytes.Repeat([]byte("x"), 512)
	b.ReportAllocs()
	for b.Loop() {
		k.Seal("notify:deliver", body)
	}
}

func BenchmarkOpen(b *testing.B) {
	k := mustParse(b, "k1:"+secret(1))
	sealed := k.Seal("notify:deliver", bytes.Repeat([]byte("x"), 512))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open("notify:deliver", sealed); err != nil {
			b.Fatal(err)
		}
	}
}
