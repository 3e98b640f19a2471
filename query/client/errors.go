package client

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels for the answers callers usually branch on. An *APIError matches
// the one for its status code with errors.Is:
//
//	if errors.Is(err, client.ErrNotFound) { … }
var (
	ErrNotFound     = errors.New("notifyd: not found")          // 404
	ErrUnauthorized = errors.New("notifyd: unauthorized")       // 401: missing or wrong token
	ErrForbidden    = errors.New("notifyd: forbidden")          // 403: the token may not do this
	ErrConflict     = errors.New("notifyd: conflict")           // 409: e.g. an idempotency key reused with other content
	ErrTooLarge     = errors.New("notifyd: response too large") // the answer exceeded the client's size bound
	// ErrIdempotencyConflict: Send's idempotency key was already used for
	// this receiver with another event type or payload (409
	// idempotency_conflict, which also matches ErrConflict). The stored
	// notification stands; the new content was not accepted. The Go
	// producer client (notifier) returns its own ErrIdempotencyConflict.
	ErrIdempotencyConflict = errors.New("notifyd: idempotency key already used with a different event type or payload")
)

// APIError is an error answer from the API:
//
//	{"error": {"code": "invalid_field", "message": "…", "field": "payload"}}
//
// Code and Message are empty-safe: an answer that is not in this shape (a
// proxy's error page, say) gets Code "http_<status>" and the start of the
// body as Message.
type APIError struct {
	StatusCode int
	Code       string
	Message    string
	// Field names the offending request field of a validation error.
	Field string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("notifyd: %d %s: %s", e.StatusCode, e.Code, e.Message)
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrNotFound) and friends work.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrIdempotencyConflict:
		return e.StatusCode == http.StatusConflict && e.Code == "idempotency_conflict"
	}
	return false
}

// Temporary reports whether repeating the same request later may succeed:
// 429 and 5xx answers. The client never retries by itself; callers that
// retry can use this to decide.
func (e *APIError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}
