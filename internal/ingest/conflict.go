package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// SameContent reports whether two notifications handed in under one
// idempotency key carry the same event type and payload, the payloads
// compared as compact JSON (what is stored and what tasks carry). A key
// used again with other content is an idempotency conflict, on every path
// in: the HTTP ingest answers 409, the Go client returns
// ErrIdempotencyConflict, and a worker that finds one counts and logs it.
func SameContent(typeA string, payloadA []byte, typeB string, payloadB []byte) bool {
	if typeA != typeB {
		return false
	}
	if bytes.Equal(payloadA, payloadB) {
		return true
	}
	var ca, cb bytes.Buffer
	return json.Compact(&ca, payloadA) == nil && json.Compact(&cb, payloadB) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}

// PayloadHash names a payload in errors and logs without showing it:
// "sha256:" and the first 16 hex digits of the hash of its compact form, so
// that the same JSON spelled with other white space has the same hash.
func PayloadHash(payload []byte) string {
	var c bytes.Buffer
	if json.Compact(&c, payload) == nil {
		payload = c.Bytes()
	}
	sum := sha256.Sum256(payload)
	return "sha256:" + hex.EncodeToString(sum[:8])
}
