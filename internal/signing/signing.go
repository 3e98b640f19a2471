// Package signing produces and checks Standard Webhooks signatures
// (https://www.standardwebhooks.com): an HMAC-SHA256 over
// "<webhook-id>.<unix seconds>.<body>", sent as "v1,<base64>" in the
// webhook-signature header.
//
// Receivers verify with the official libraries, so the byte layout here must
// match the specification exactly; the tests pin it against the reference Go
// implementation.
//
// It must not log or return the secrets it is given.
package signing

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names defined by Standard Webhooks.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks secrets in their textual form, as the specification and
// its libraries expect them.
const SecretPrefix = "whsec_"

var (
	// ErrInvalidSecret reports a secret that is not (optionally "whsec_"
	// prefixed) standard base64 of at least MinSecretBytes bytes.
	ErrInvalidSecret = errors.New("signing: invalid webhook secret")
	// ErrMissingHeaders reports that a webhook header is absent, or that the
	// timestamp header is not an integer.
	ErrMissingHeaders = errors.New("signing: missing or malformed webhook headers")
	// ErrInvalidSignature reports that no v1 signature matches any key.
	ErrInvalidSignature = errors.New("signing: no matching webhook signature")
	// ErrTimestampOutOfRange reports a correctly signed message whose
	// timestamp is too far from now: a replay, or clock skew.
	ErrTimestampOutOfRange = errors.New("signing: webhook timestamp outside tolerance")
)

// MinSecretBytes is the lower bound the specification recommends for keys;
// shorter secrets are refused by ParseSecret because they are guessable.
const MinSecretBytes = 24

// newSecretBytes is the size NewSecret generates: the top of the range the
// specification's reference implementations produce.
const newSecretBytes = 32

const (
	sigVersion = "v1"
	// sigLen is len("v1," + base64(32-byte MAC)).
	sigLen = len(sigVersion) + 1 + 44
)

var b64 = base64.StdEncoding

// NewSecret returns a fresh random secret in "whsec_<base64>" form.
func NewSecret() (string, error) {
	var key [newSecretBytes]byte
	if _, err := rand.Read(key[:]); err != nil {
		return "", fmt.Errorf("signing: generate secret: %w", err)
	}
	return SecretPrefix + b64.EncodeToString(key[:]), nil
}

// ParseSecret decodes a secret with or without the "whsec_" prefix into the
// raw HMAC key.
func ParseSecret(s string) ([]byte, error) {
	key, err := b64.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: not standard base64", ErrInvalidSecret)
	}
	if len(key) < MinSecretBytes {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrInvalidSecret, len(key), MinSecretBytes)
	}
	return key, nil
}

// Sign returns the "v1,<base64>" signature of one message under one key.
func Sign(key []byte, msgID string, ts time.Time, body []byte) string {
	sig, _ := appendSignature(nil, nil, hmac.New(sha256.New, key), msgID, ts.Unix(), body)
	return string(sig)
}

// appendSignature appends "v1,<base64 MAC>" to dst. h must be a fresh or Reset
// HMAC-SHA256 for the key. scratch assembles the signed prefix and receives
// the MAC; it is returned grown so that pooled callers can keep it, because
// stack buffers handed to hash.Hash methods escape to the heap anyway.
func appendSignature(dst, scratch []byte, h hash.Hash, msgID string, unix int64, body []byte) (sig, scratchOut []byte) {
	scratch = append(scratch[:0], msgID...)
	scratch = append(scratch, '.')
	scratch = strconv.AppendInt(scratch, unix, 10)
	scratch = append(scratch, '.')
	h.Write(scratch)
	h.Write(body)
	scratch = h.Sum(scratch[:0])
	dst = append(dst, sigVersion...)
	dst = append(dst, ',')
	return b64.AppendEncode(dst, scratch), scratch
}

// Signer signs messages with one or more keys. During secret rotation both
// the old and the new key sign, so receivers holding either secret accept the
// message. A Signer is safe for concurrent use.
type Signer struct {
	keys [][]byte
	// pool holds one keyed HMAC per key: hmac.New derives the padded key
	// state, and Reset restores it far cheaper than rebuilding it per call.
	pool sync.Pool
}

type signerState struct {
	macs    []hash.Hash
	buf     []byte // the header being assembled
	scratch []byte
}

// NewSigner returns a Signer for the given raw keys, in the order their
// signatures should appear. It panics if no key is given, because a signer
// that signs with nothing would silently send unauthenticated webhooks.
func NewSigner(keys ...[]byte) *Signer {
	if len(keys) == 0 {
		panic("signing: NewSigner needs at least one key")
	}
	s := &Signer{keys: make([][]byte, len(keys))}
	for i, k := range keys {
		s.keys[i] = append([]byte(nil), k...) // callers may reuse their slices
	}
	s.pool.New = func() any {
		st := &signerState{
			macs:    make([]hash.Hash, len(s.keys)),
			buf:     make([]byte, 0, len(s.keys)*(sigLen+1)),
			scratch: make([]byte, 0, 64),
		}
		for i, k := range s.keys {
			st.macs[i] = hmac.New(sha256.New, k)
		}
		return st
	}
	return s
}

// Header returns the webhook-signature header value: one "v1,<base64>" per
// key, separated by spaces.
func (s *Signer) Header(msgID string, ts time.Time, body []byte) string {
	st := s.pool.Get().(*signerState)
	unix := ts.Unix()
	buf := st.buf[:0]
	for i, h := range st.macs {
		if i > 0 {
			buf = append(buf, ' ')
		}
		h.Reset()
		buf, st.scratch = appendSignature(buf, st.scratch, h, msgID, unix, body)
	}
	out := string(buf)
	st.buf = buf
	s.pool.Put(st)
	return out
}

// Verify checks the webhook-id, webhook-timestamp and webhook-signature
// headers of a received message against any of keys. It succeeds if any v1
// signature in the space-separated list matches any key and the timestamp is
// within tolerance of now in either direction; signatures of other versions
// are ignored.
//
// The signature is checked before the timestamp, so ErrTimestampOutOfRange
// is only returned for messages that were genuinely signed with one of the
// keys and points at replay or clock skew rather than forgery.
func Verify(headers http.Header, body []byte, now time.Time, tolerance time.Duration, keys ...[]byte) error {
	msgID := headers.Get(HeaderID)
	tsHeader := headers.Get(HeaderTimestamp)
	sigHeader := headers.Get(HeaderSignature)
	if msgID == "" || tsHeader == "" || sigHeader == "" {
		return ErrMissingHeaders
	}
	unix, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not unix seconds", ErrMissingHeaders, truncate(tsHeader, 32))
	}
	if !signatureMatches(sigHeader, msgID, unix, body, keys) {
		return ErrInvalidSignature
	}
	d := now.Sub(time.Unix(unix, 0)) // saturates instead of overflowing
	if d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %d is %s from now", ErrTimestampOutOfRange, unix, d.Round(time.Second))
	}
	return nil
}

func signatureMatches(sigHeader, msgID string, unix int64, body []byte, keys [][]byte) bool {
	var exp, scratch []byte
	for _, key := range keys {
		exp, scratch = appendSignature(exp[:0], scratch, hmac.New(sha256.New, key), msgID, unix, body)
		rest := sigHeader
		for rest != "" {
			var entry string
			entry, rest, _ = strings.Cut(rest, " ")
			version, _, ok := strings.Cut(entry, ",")
			if !ok || version != sigVersion {
				continue
			}
			// Compare the whole "v1,<sig>" entry in constant time; its length
			// is public, so differing lengths may return early.
			if hmac.Equal(exp, []byte(entry)) {
				return true
			}
		}
	}
	return false
}

// truncate keeps attacker-supplied header values from bloating error logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ForReceiver returns the signer of a receiver's deliveries: its current
// secret and, until previousUntil, the previous one (a rotation's grace).
// expires, when not zero, is when that previous secret stops signing, so a
// cached signer can be dropped on time.
func ForReceiver(current, previous string, previousUntil *time.Time, now time.Time) (_ *Signer, expires time.Time, _ error) {
	key, err := ParseSecret(current)
	if err != nil {
		return nil, expires, err
	}
	keys := [][]byte{key}
	if previous != "" && previousUntil != nil && now.Before(*previousUntil) {
		if old, err := ParseSecret(previous); err == nil {
			keys = append(keys, old)
		}
		expires = *previousUntil
	}
	return NewSigner(keys...), expires, nil
}
