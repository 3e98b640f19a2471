package signing_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/notifyd/notifyd/internal/signing"
)

// The test vector published with the specification's reference libraries.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorUnix   = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

const tolerance = 5 * time.Minute

func mustKey(t testing.TB, secret string) []byte {
	t.Helper()
	key, err := signing.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func newKey(t testing.TB) []byte {
	t.Helper()
	secret, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return mustKey(t, secret)
}

func headers(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(signing.HeaderID, id)
	h.Set(signing.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(signing.HeaderSignature, sig)
	return h
}

func TestSignKnownVector(t *testing.T) {
	key := mustKey(t, vectorSecret)
	ts := time.Unix(vectorUnix, 0)
	tests := []struct {
		name string
		got  string
	}{
		{"Sign", signing.Sign(key, vectorID, ts, []byte(vectorBody))},
		{"Signer", signing.NewSigner(key).Header(vectorID, ts, []byte(vectorBody))},
		{"Sign ignores sub-second part", signing.Sign(key, vectorID, ts.Add(999*time.Millisecond), []byte(vectorBody))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != vectorSig {
				t.Fatalf("got %s, want %s", tt.got, vectorSig)
			}
		})
	}
}

func TestOurSignaturesVerifyWithReferenceLibrary(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		id   string
		body []byte
	}{
		{"json", "msg_2b4e1f", []byte(`{"event":"invoice.paid","amount":42}`)},
		{"empty body", "msg_empty", nil},
		{"binary body", "msg_bin", []byte{0, 1, 2, 0xff, '.', '\n'}},
		{"long id", strings.Repeat("i", 300), []byte("x")},
		{"large body", "msg_large", bytes.Repeat([]byte("abcdefgh"), 1<<14)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret, err := signing.NewSecret()
			if err != nil {
				t.Fatal(err)
			}
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			key := mustKey(t, secret)
			for name, sig := range map[string]string{
				"Sign":   signing.Sign(key, tt.id, now, tt.body),
				"Signer": signing.NewSigner(key).Header(tt.id, now, tt.body),
			} {
				if err := wh.Verify(tt.body, headers(tt.id, now, sig)); err != nil {
					t.Errorf("reference library rejects %s output %q: %v", name, sig, err)
				}
			}
		})
	}
}

func TestReferenceSignaturesVerifyWithOurs(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		id   string
		body []byte
	}{
		{"json", "msg_2b4e1f", []byte(`{"event":"invoice.paid"}`)},
		{"empty body", "msg_empty", nil},
		{"dots everywhere", "msg.with.dots", []byte("1.2.3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret, err := signing.NewSecret()
			if err != nil {
				t.Fatal(err)
			}
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := wh.Sign(tt.id, now, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if err := signing.Verify(headers(tt.id, now, sig), tt.body, now, tolerance, mustKey(t, secret)); err != nil {
				t.Fatalf("Verify rejects reference signature %q: %v", sig, err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := newKey(t), newKey(t)
	now := time.Now()
	body := []byte(`{"n":1}`)
	sig := signing.NewSigner(oldKey, newKey).Header("msg_rot", now, body)

	parts := strings.Split(sig, " ")
	if len(parts) != 2 {
		t.Fatalf("rotation header %q has %d signatures, want 2", sig, len(parts))
	}
	if parts[0] != signing.Sign(oldKey, "msg_rot", now, body) || parts[1] != signing.Sign(newKey, "msg_rot", now, body) {
		t.Fatalf("rotation header %q is not the per-key signatures in key order", sig)
	}

	tests := []struct {
		name    string
		keys    [][]byte
		wantErr error
	}{
		{"old key alone", [][]byte{oldKey}, nil},
		{"new key alone", [][]byte{newKey}, nil},
		{"both keys", [][]byte{oldKey, newKey}, nil},
		{"unrelated key", [][]byte{mustKey(t, vectorSecret)}, signing.ErrInvalidSignature},
		{"unrelated key first", [][]byte{mustKey(t, vectorSecret), newKey}, nil},
		{"no keys", nil, signing.ErrInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := signing.Verify(headers("msg_rot", now, sig), body, now, tolerance, tt.keys...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}

	// Each signature in the rotation header also verifies with the reference
	// library holding just one of the secrets.
	for _, key := range [][]byte{oldKey, newKey} {
		wh, err := standardwebhooks.NewWebhookRaw(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, headers("msg_rot", now, sig)); err != nil {
			t.Errorf("reference library rejects rotation header: %v", err)
		}
	}
}

func TestVerifyRejections(t *testing.T) {
	key := newKey(t)
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"event":"x"}`)
	const id = "msg_1"
	good := func() http.Header { return headers(id, now, signing.Sign(key, id, now, body)) }
	with := func(name, value string) http.Header {
		h := good()
		h.Set(name, value)
		return h
	}
	without := func(name string) http.Header {
		h := good()
		h.Del(name)
		return h
	}
	signedAt := func(ts time.Time) http.Header { return headers(id, ts, signing.Sign(key, id, ts, body)) }
	v1a := "v1a," + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))

	tests := []struct {
		name    string
		headers http.Header
		body    []byte
		wantErr error
	}{
		{"valid", good(), body, nil},
		{"valid at edge of past tolerance", signedAt(now.Add(-tolerance)), body, nil},
		{"valid at edge of future tolerance", signedAt(now.Add(tolerance)), body, nil},
		{"valid among other versions", with(signing.HeaderSignature, v1a+" "+signing.Sign(key, id, now, body)), body, nil},
		{"valid after a wrong v1", with(signing.HeaderSignature, "v1,AAAA "+signing.Sign(key, id, now, body)), body, nil},
		{"valid with extra spaces", with(signing.HeaderSignature, "  "+signing.Sign(key, id, now, body)+"  "), body, nil},

		{"tampered body", good(), []byte(`{"event":"y"}`), signing.ErrInvalidSignature},
		{"truncated body", good(), body[:len(body)-1], signing.ErrInvalidSignature},
		{"tampered id", with(signing.HeaderID, "msg_2"), body, signing.ErrInvalidSignature},
		{"tampered timestamp", with(signing.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10)), body, signing.ErrInvalidSignature},
		{"tampered signature", with(signing.HeaderSignature, "v1,"+strings.Repeat("A", 43)+"="), body, signing.ErrInvalidSignature},
		{"only other versions", with(signing.HeaderSignature, v1a), body, signing.ErrInvalidSignature},
		{"right signature wrong version", with(signing.HeaderSignature, "v2,"+strings.TrimPrefix(signing.Sign(key, id, now, body), "v1,")), body, signing.ErrInvalidSignature},
		{"bare signature", with(signing.HeaderSignature, strings.TrimPrefix(signing.Sign(key, id, now, body), "v1,")), body, signing.ErrInvalidSignature},
		{"empty v1", with(signing.HeaderSignature, "v1,"), body, signing.ErrInvalidSignature},

		{"stale", signedAt(now.Add(-tolerance - time.Second)), body, signing.ErrTimestampOutOfRange},
		{"far past", signedAt(time.Unix(0, 0)), body, signing.ErrTimestampOutOfRange},
		{"future", signedAt(now.Add(tolerance + time.Second)), body, signing.ErrTimestampOutOfRange},
		{"far future", signedAt(time.Unix(1<<62, 0)), body, signing.ErrTimestampOutOfRange},
		{"stale and forged", headers(id, now.Add(-time.Hour), "v1,AAAA"), body, signing.ErrInvalidSignature},

		{"missing id", without(signing.HeaderID), body, signing.ErrMissingHeaders},
		{"missing timestamp", without(signing.HeaderTimestamp), body, signing.ErrMissingHeaders},
		{"missing signature", without(signing.HeaderSignature), body, signing.ErrMissingHeaders},
		{"no headers", http.Header{}, body, signing.ErrMissingHeaders},
		{"timestamp not a number", with(signing.HeaderTimestamp, "yesterday"), body, signing.ErrMissingHeaders},
		{"timestamp in milliseconds overflow", with(signing.HeaderTimestamp, "99999999999999999999"), body, signing.ErrMissingHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := signing.Verify(tt.headers, tt.body, now, tolerance, key)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Verify = %v, want nil", err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyAcceptsCanonicalisedHeaderNames(t *testing.T) {
	key := newKey(t)
	now := time.Now()
	body := []byte("b")
	// Servers see canonical MIME header keys; a map built by hand with the
	// lower-case names must work the same after http.Header.Set.
	h := http.Header{}
	h.Set("Webhook-Id", "msg")
	h.Set("WEBHOOK-TIMESTAMP", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", signing.Sign(key, "msg", now, body))
	if err := signing.Verify(h, body, now, tolerance, key); err != nil {
		t.Fatal(err)
	}
}

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		secret, err := signing.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, signing.SecretPrefix) {
			t.Fatalf("secret %q lacks the %q prefix", secret, signing.SecretPrefix)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, signing.SecretPrefix))
		if err != nil {
			t.Fatalf("secret %q is not standard base64: %v", secret, err)
		}
		if len(key) < 24 || len(key) > 32 {
			t.Fatalf("secret has %d bytes, want 24..32", len(key))
		}
		if seen[secret] {
			t.Fatalf("secret %q generated twice", secret)
		}
		seen[secret] = true
	}
}

func TestParseSecret(t *testing.T) {
	raw24 := bytes.Repeat([]byte{0xab}, 24)
	tests := []struct {
		name    string
		in      string
		want    []byte
		wantErr bool
	}{
		{"with prefix", "whsec_" + base64.StdEncoding.EncodeToString(raw24), raw24, false},
		{"without prefix", base64.StdEncoding.EncodeToString(raw24), raw24, false},
		{"reference vector", vectorSecret, mustDecode(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), false},
		{"empty", "", nil, true},
		{"prefix only", "whsec_", nil, true},
		{"not base64", "whsec_!!!!", nil, true},
		{"url-safe alphabet", "whsec_" + strings.Repeat("-_", 16), nil, true},
		{"missing padding", "whsec_" + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 25)), nil, true},
		{"too short", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short")), nil, true},
		{"wrong prefix", "whsek_" + base64.StdEncoding.EncodeToString(raw24), nil, true},
		{"whitespace", " whsec_" + base64.StdEncoding.EncodeToString(raw24), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := signing.ParseSecret(tt.in)
			if tt.wantErr {
				if !errors.Is(err, signing.ErrInvalidSecret) {
					t.Fatalf("ParseSecret(%q) = %x, %v; want ErrInvalidSecret", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSecret(%q) = %v", tt.in, err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("ParseSecret(%q) = %x, want %x", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewSignerCopiesKeys(t *testing.T) {
	key := mustKey(t, vectorSecret)
	s := signing.NewSigner(key)
	for i := range key {
		key[i] = 0
	}
	if got := s.Header(vectorID, time.Unix(vectorUnix, 0), []byte(vectorBody)); got != vectorSig {
		t.Fatalf("Signer changed after the caller reused its key slice: %s", got)
	}
}

func TestNewSignerWithoutKeysPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewSigner() did not panic")
		}
	}()
	signing.NewSigner()
}

func TestSignerConcurrentUse(t *testing.T) {
	s := signing.NewSigner(mustKey(t, vectorSecret))
	ts := time.Unix(vectorUnix, 0)
	done := make(chan string)
	for range 8 {
		go func() {
			var last string
			for range 200 {
				last = s.Header(vectorID, ts, []byte(vectorBody))
				if last != vectorSig {
					break
				}
			}
			done <- last
		}()
	}
	for range 8 {
		if got := <-done; got != vectorSig {
			t.Fatalf("concurrent Header = %s, want %s", got, vectorSig)
		}
	}
}

func TestSignerHeaderAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	s := signing.NewSigner(newKey(t), newKey(t))
	body := bytes.Repeat([]byte("x"), 1024)
	ts := time.Now()
	s.Header("msg_warm", ts, body) // fill the pool
	allocs := testing.AllocsPerRun(100, func() { s.Header("msg_0123456789", ts, body) })
	// The returned string is the only allocation a warm Signer should make.
	if allocs > 1 {
		t.Fatalf("Header allocates %v times per call, want at most 1", allocs)
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func BenchmarkSignerHeader(b *testing.B) {
	body := bytes.Repeat([]byte(`{"k":"v"},`), 100) // ~1 KiB, a typical event
	ts := time.Now()
	for _, n := range []int{1, 2} {
		keys := make([][]byte, n)
		for i := range keys {
			keys[i] = newKey(b)
		}
		s := signing.NewSigner(keys...)
		b.Run(strconv.Itoa(n)+"key", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_ = s.Header("msg_2b4e1f9a7c", ts, body)
			}
		})
	}
	b.Run("Sign", func(b *testing.B) {
		key := newKey(b)
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			_ = signing.Sign(key, "msg_2b4e1f9a7c", ts, body)
		}
	})
}
