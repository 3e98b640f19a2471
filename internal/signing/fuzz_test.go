package signing_test

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/signing"
)

// FuzzVerify feeds arbitrary headers and bodies to Verify. It must never
// panic; it may only accept a message whose signature header really carries
// the signature of that body; and a correctly signed message must verify for
// its own body and be rejected for any other.
func FuzzVerify(f *testing.F) {
	f.Add("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte(`{"test": 2432232314}`), []byte(`{"test": 2432232315}`))
	f.Add("msg", "-1", "v1a,abc v1,", []byte(""), []byte("x"))
	f.Add("a.b", "+0001614265330", "v1,,, v1", []byte("c.d"), []byte("c.d "))

	key := []byte("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw-fuzz-key")
	now := time.Unix(1614265330, 0)
	const tol = 5 * time.Minute

	f.Fuzz(func(t *testing.T, id, tsHeader, sigHeader string, body, tampered []byte) {
		h := http.Header{}
		h.Set(signing.HeaderID, id)
		h.Set(signing.HeaderTimestamp, tsHeader)
		h.Set(signing.HeaderSignature, sigHeader)
		if err := signing.Verify(h, body, now, tol, key); err == nil {
			unix, perr := strconv.ParseInt(tsHeader, 10, 64)
			if perr != nil {
				t.Fatalf("accepted unparsable timestamp %q", tsHeader)
			}
			want := signing.Sign(key, id, time.Unix(unix, 0), body)
			if !containsField(sigHeader, want) {
				t.Fatalf("accepted signature header %q that lacks %q", sigHeader, want)
			}
		}

		if id == "" {
			return
		}
		signed := http.Header{}
		signed.Set(signing.HeaderID, id)
		signed.Set(signing.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		signed.Set(signing.HeaderSignature, signing.NewSigner(key).Header(id, now, body))
		if err := signing.Verify(signed, body, now, tol, key); err != nil {
			t.Fatalf("own signature rejected: %v", err)
		}
		if bytes.Equal(tampered, body) {
			return
		}
		if err := signing.Verify(signed, tampered, now, tol, key); !errors.Is(err, signing.ErrInvalidSignature) {
			t.Fatalf("tampered body %q (signed %q) gave %v, want ErrInvalidSignature", tampered, body, err)
		}
	})
}

func containsField(header, want string) bool {
	for _, f := range strings.Split(header, " ") {
		if f == want {
			return true
		}
	}
	return false
}
