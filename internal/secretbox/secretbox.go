// Package secretbox encrypts the secrets notifyd must keep readable (the
// receivers' signing secrets) before they reach Postgres, so a database dump,
// a replica or a backup does not hold them.
//
// A sealed value is text: "nfysec1:<key id>:<base64url(nonce || ciphertext)>",
// AES-256-GCM with a random 96-bit nonce and the caller's associated data
// (the receiver id), so a value copied onto another row does not open. The
// key id names the key that sealed it; a Keyring holds several so keys can
// rotate: the first seals, all open.
//
// It must not know where values are stored nor log anything.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every sealed value; anything else is a legacy plaintext.
const Prefix = "nfysec1:"

// KeySize is the length of a key: AES-256.
const KeySize = 32

// maxKeyID bounds key ids so they stay short in every stored value.
const maxKeyID = 32

// Sentinel errors callers branch on.
var (
	// ErrUnknownKey: a value was sealed with a key the ring does not hold.
	ErrUnknownKey = errors.New("secretbox: sealed with a key that is not configured")
	// ErrNoKeys: a sealed value was read, or a seal asked for, without keys.
	ErrNoKeys = errors.New("secretbox: no keys configured (NOTIFYD_SECRET_KEYS)")
	// ErrCorrupt: a sealed value does not decode or does not authenticate.
	ErrCorrupt = errors.New("secretbox: sealed value is corrupt or belongs to another record")
)

type key struct {
	id   string
	aead cipher.AEAD
}

// Keyring is an ordered list of keys; the zero value and nil hold none.
type Keyring struct {
	keys []key
}

// ParseKeys reads "id:base64(32 bytes),id:base64(...)" (standard or URL
// base64, padded or not). Ids are 1 to 32 of [A-Za-z0-9_-] and unique. An
// empty string is an empty ring.
func ParseKeys(s string) (*Keyring, error) {
	r := &Keyring{}
	seen := map[string]bool{}
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, enc, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("key %d: want id:base64", i+1)
		}
		if err := checkID(id); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("key %d: id %q appears twice", i+1, id)
		}
		seen[id] = true
		raw, err := decodeKey(enc)
		if err != nil {
			// The error never quotes the key material.
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		if err := r.add(id, raw); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func checkID(id string) error {
	if id == "" || len(id) > maxKeyID {
		return fmt.Errorf("key id must be 1 to %d characters", maxKeyID)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return errors.New("key id may hold only letters, digits, '_' and '-'")
		}
	}
	return nil
}

func decodeKey(enc string) ([]byte, error) {
	enc = strings.TrimRight(strings.TrimSpace(enc), "=")
	raw, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil {
		raw, err = base64.RawURLEncoding.DecodeString(enc)
	}
	if err != nil {
		return nil, errors.New("key is not valid base64")
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("key must be %d bytes, got %d", KeySize, len(raw))
	}
	return raw, nil
}

func (r *Keyring) add(id string, raw []byte) error {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return fmt.Errorf("key %q: %w", id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("key %q: %w", id, err)
	}
	r.keys = append(r.keys, key{id: id, aead: aead})
	return nil
}

// Len is the number of keys.
func (r *Keyring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

// Current is the id of the key that seals ("" without keys).
func (r *Keyring) Current() string {
	if r.Len() == 0 {
		return ""
	}
	return r.keys[0].id
}

// Seal encrypts plaintext under the current key, bound to aad.
func (r *Keyring) Seal(plaintext string, aad []byte) (string, error) {
	if r.Len() == 0 {
		return "", ErrNoKeys
	}
	k := r.keys[0]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("secretbox: nonce: %w", err)
	}
	sealed := k.aead.Seal(nonce, nonce, []byte(plaintext), aad)
	return Prefix + k.id + ":" + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// IsSealed reports whether v is a sealed value (rather than plaintext).
func IsSealed(v string) bool { return strings.HasPrefix(v, Prefix) }

// KeyID returns the id of the key that sealed v, "" for plaintext.
func KeyID(v string) string {
	if !IsSealed(v) {
		return ""
	}
	id, _, _ := strings.Cut(v[len(Prefix):], ":")
	return id
}

// Open returns the plaintext of v: a sealed value is decrypted and
// authenticated against aad; anything else is a legacy plaintext value and is
// returned as it is.
func (r *Keyring) Open(v string, aad []byte) (string, error) {
	if !IsSealed(v) {
		return v, nil
	}
	id, enc, ok := strings.Cut(v[len(Prefix):], ":")
	if !ok {
		return "", ErrCorrupt
	}
	if r.Len() == 0 {
		return "", ErrNoKeys
	}
	var k *key
	for i := range r.keys {
		if r.keys[i].id == id {
			k = &r.keys[i]
			break
		}
	}
	if k == nil {
		return "", fmt.Errorf("%w: %q", ErrUnknownKey, id)
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(raw) < k.aead.NonceSize()+k.aead.Overhead() {
		return "", ErrCorrupt
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, raw[:n], raw[n:], aad)
	if err != nil {
		return "", ErrCorrupt
	}
	return string(plain), nil
}

// NeedsReseal reports whether v should be sealed again with the current key:
// it is plaintext or sealed under an older key. Without keys nothing does.
func (r *Keyring) NeedsReseal(v string) bool {
	if r.Len() == 0 {
		return false
	}
	return KeyID(v) != r.Current()
}
