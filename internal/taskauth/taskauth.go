// Package taskauth authenticates the tasks notifyd's producers put in Redis,
// so that a process that can write to Redis but does not hold
// NOTIFYD_TASK_KEY cannot make workers send signed webhooks.
//
// A sealed payload is the task's JSON followed by a trailer:
//
//	<json> "\n" "nt1." <key id> "." <base64url HMAC-SHA256>
//
// The MAC covers the task type, the key id and the JSON. encoding/json never
// writes a raw newline, so the trailer is found by the last newline.
//
// It must not decide what happens to a refused task (the worker drops it)
// and must not know the task's layout (internal/tasks does).
package taskauth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Errors the worker branches on to count refused tasks by reason.
var (
	// ErrUnsigned: keys are configured and the payload carries no MAC.
	ErrUnsigned = errors.New("task is not signed")
	// ErrUnknownKey: the MAC names a key id this process does not hold.
	ErrUnknownKey = errors.New("task signed with an unknown key")
	// ErrBadMAC: the MAC does not match (altered payload or wrong key).
	ErrBadMAC = errors.New("task signature does not match")
)

// MinKeyBytes is the shortest key accepted: HMAC-SHA256's block of entropy.
const MinKeyBytes = 32

// maxKeyIDLen bounds key ids, which travel in every task.
const maxKeyIDLen = 32

const prefix = "nt1."

// macLen is the encoded length of a MAC in the trailer.
var macLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// macEncoding decodes a trailer's MAC strictly: its last character carries
// two unused bits, which a lenient decoder ignores, so four spellings of one
// MAC would open (found by FuzzOpen). Only what Seal wrote is accepted.
var macEncoding = base64.RawURLEncoding.Strict()

// Keyring holds the task keys: the first signs, all verify. A nil *Keyring
// is valid and means "no keys" (development): Seal leaves payloads unsigned
// and Open accepts any payload, stripping a trailer it cannot check.
type Keyring struct {
	keys []*key
}

type key struct {
	id    string
	pool  sync.Pool // of hash.Hash keyed with secret; HMAC setup is the costly part
	trail []byte    // "\n" + prefix + id + "."
}

// Parse reads NOTIFYD_TASK_KEY: comma-separated id:secret pairs, the secret
// base64 (standard or URL alphabet, padded or not) of at least 32 bytes,
// e.g. "k2:<base64>,k1:<base64>". An empty spec gives a nil Keyring.
func Parse(spec string) (*Keyring, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	k := &Keyring{}
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		id, secret, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok {
			return nil, fmt.Errorf("task key %q: want id:base64-secret", redact(item))
		}
		if err := ValidKeyID(id); err != nil {
			return nil, err
		}
		if seen[id] {
			return nil, fmt.Errorf("task key id %q appears twice", id)
		}
		seen[id] = true
		raw, err := decodeSecret(secret)
		if err != nil {
			return nil, fmt.Errorf("task key %q: %w", id, err)
		}
		k.keys = append(k.keys, newKey(id, raw))
	}
	return k, nil
}

// ValidKeyID reports whether id may name a key: 1 to 32 of [A-Za-z0-9_-].
func ValidKeyID(id string) error {
	if id == "" || len(id) > maxKeyIDLen {
		return fmt.Errorf("task key id %q: must be 1 to %d characters", id, maxKeyIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("task key id %q: only letters, digits, '_' and '-'", id)
		}
	}
	return nil
}

func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	raw, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("secret is not base64")
	}
	if len(raw) < MinKeyBytes {
		return nil, fmt.Errorf("secret is %d bytes; at least %d required (openssl rand -base64 32)", len(raw), MinKeyBytes)
	}
	return raw, nil
}

// redact keeps a malformed entry's secret out of error messages.
func redact(item string) string {
	if len(item) > 4 {
		return item[:4] + "…"
	}
	return item
}

func newKey(id string, secret []byte) *key {
	k := &key{id: id, trail: []byte("\n" + prefix + id + ".")}
	k.pool.New = func() any { return hmac.New(sha256.New, secret) }
	return k
}

// Signing reports whether tasks are signed (keys are configured).
func (k *Keyring) Signing() bool { return k != nil && len(k.keys) > 0 }

// SigningKeyID is the id of the key that signs, or "".
func (k *Keyring) SigningKeyID() string {
	if !k.Signing() {
		return ""
	}
	return k.keys[0].id
}

func (k *key) mac(taskType string, body []byte) []byte {
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(taskType))
	h.Write([]byte{0})
	h.Write([]byte(k.id))
	h.Write([]byte{0})
	h.Write(body)
	sum := h.Sum(make([]byte, 0, sha256.Size))
	k.pool.Put(h)
	return sum
}

// Seal appends the MAC trailer to body (a task's JSON) for a task of
// taskType. body is returned unchanged when no key is configured.
func (k *Keyring) Seal(taskType string, body []byte) []byte {
	if !k.Signing() {
		return body
	}
	sk := k.keys[0]
	sum := sk.mac(taskType, body)
	out := make([]byte, 0, len(body)+len(sk.trail)+base64.RawURLEncoding.EncodedLen(len(sum)))
	out = append(out, body...)
	out = append(out, sk.trail...)
	return base64.RawURLEncoding.AppendEncode(out, sum)
}

// Open checks payload's MAC and returns the body it covers. Without keys
// it accepts the payload, dropping a trailer it cannot check: a worker
// without keys keeps working while producers start signing.
func (k *Keyring) Open(taskType string, payload []byte) ([]byte, error) {
	body, id, mac, signed := split(payload)
	if !k.Signing() {
		return body, nil
	}
	if !signed {
		return nil, ErrUnsigned
	}
	for _, key := range k.keys {
		if key.id != string(id) {
			continue
		}
		var got [sha256.Size]byte
		if len(mac) != macLen {
			return nil, ErrBadMAC
		}
		n, err := macEncoding.Decode(got[:], mac)
		if err != nil || !hmac.Equal(got[:n], key.mac(taskType, body)) {
			return nil, ErrBadMAC
		}
		return body, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKey, id)
}

// split separates the body from a trailer; signed is false when payload has
// no well-formed trailer (then body is the whole payload).
func split(payload []byte) (body, id, mac []byte, signed bool) {
	nl := bytes.LastIndexByte(payload, '\n')
	if nl < 0 || !bytes.HasPrefix(payload[nl+1:], []byte(prefix)) {
		return payload, nil, nil, false
	}
	rest := payload[nl+1+len(prefix):]
	dot := bytes.IndexByte(rest, '.')
	if dot < 0 {
		return payload, nil, nil, false
	}
	return payload[:nl], rest[:dot], rest[dot+1:], true
}
