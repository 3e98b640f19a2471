package notifier

import (
	"errors"
	"fmt"
)

// ErrIdempotencyConflict: the idempotency key was already used for this
// receiver with another event type or payload. The notification already
// queued keeps its content and the new content is not sent. The error is a
// *ConflictError naming both payloads' hashes.
//
// Notify can tell only while the first notification's task is in Redis
// (queued, waiting for a retry of a deferral, or being attempted). Once its
// first attempt is done, Notify queues the new content and the worker finds
// the conflict against Postgres: it drops the task, counts it in
// notifyd_idempotency_conflicts_total{detected_by="worker"} and logs both
// hashes; Notify has returned nil by then.
var ErrIdempotencyConflict = errors.New("notifier: idempotency key already used with a different event type or payload")

// ConflictError is the ErrIdempotencyConflict of one notification.
type ConflictError struct {
	ID           string // the notification the key already names
	QueuedHash   string // ingest.PayloadHash of the payload queued first
	RejectedHash string // … of the payload refused
	TypeDiffers  bool   // the event types differ too (or only they do)
}

func (e *ConflictError) Error() string {
	what := "payload"
	if e.TypeDiffers {
		what = "event type or payload"
	}
	return fmt.Sprintf("notifier: notification %s: idempotency key already used with a different %s (queued %s, refused %s)",
		e.ID, what, e.QueuedHash, e.RejectedHash)
}

// Unwrap makes errors.Is(err, ErrIdempotencyConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrIdempotencyConflict }
