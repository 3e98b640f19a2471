// Package ingest validates notifications handed in by producers, so the Go
// client, the HTTP endpoint and the outbox relay accept exactly the same
// input and name the same field when they refuse it.
//
// It only looks at the notification in hand: it must not do I/O (whether
// the receiver exists is the caller's question) nor store or queue anything.
package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/notifyd/notifyd/internal/netguard"
)

// Limits on what a producer may send.
const (
	DefaultMaxPayload    = 256 << 10
	MaxEventTypeLen      = 200
	MaxIdempotencyKeyLen = 255
)

// ErrInvalid is wrapped by every FieldError.
var ErrInvalid = errors.New("invalid notification")

// FieldError names the offending field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("invalid notification: %s: %s", e.Field, e.Message)
}

// Unwrap lets callers test errors.Is(err, ErrInvalid).
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Input is a notification as a producer gives it.
type Input struct {
	EventType      string
	IdempotencyKey string
	CallbackURL    string
	Payload        []byte
}

// Rules are the configurable parts of validation.
type Rules struct {
	MaxPayload int // bytes; 0 means DefaultMaxPayload
	MaxDepth   int // nesting levels of the payload; 0 means DefaultMaxDepth
	Targets    netguard.Policy
}

// Validate returns a *FieldError for the first bad field, or nil.
func (r Rules) Validate(in *Input) error {
	if err := text("event_type", in.EventType, MaxEventTypeLen); err != nil {
		return err
	}
	if err := text("idempotency_key", in.IdempotencyKey, MaxIdempotencyKeyLen); err != nil {
		return err
	}
	if in.CallbackURL != "" {
		if _, err := r.Targets.ValidateURL(in.CallbackURL); err != nil {
			return &FieldError{"callback_url", err.Error()}
		}
	}
	max := r.MaxPayload
	if max <= 0 {
		max = DefaultMaxPayload
	}
	switch {
	case len(in.Payload) == 0:
		return &FieldError{"payload", "is required"}
	case len(in.Payload) > max:
		return &FieldError{"payload", fmt.Sprintf("is %d bytes, larger than the limit of %d", len(in.Payload), max)}
	case !json.Valid(in.Payload):
		return &FieldError{"payload", "is not valid JSON"}
	case Depth(in.Payload) > r.maxDepth():
		return TooDeep(r.maxDepth())
	}
	return nil
}

// TooDeep refuses a payload nested deeper than max levels (an HTTP body's
// decoder stops at the same depth, with the same words).
func TooDeep(max int) *FieldError {
	return &FieldError{"payload", fmt.Sprintf("nests arrays and objects deeper than %d levels (the limit)", max)}
}

func text(field, s string, max int) error {
	switch {
	case s == "":
		return &FieldError{field, "is required"}
	case len(s) > max:
		return &FieldError{field, fmt.Sprintf("is longer than %d bytes", max)}
	case !utf8.ValidString(s):
		return &FieldError{field, "is not valid UTF-8"}
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return &FieldError{field, "contains control characters"}
		}
	}
	return nil
}
