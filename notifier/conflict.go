package notifier

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/tasks"
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

// compareQueued reads the task Redis already holds under d's task id and
// tells whether its content differs from d's. gone is true when the task
// ended between the refused enqueue and this read.
func (c *Client) compareQueued(d *tasks.Deliver) (conflict *ConflictError, gone bool, err error) {
	info, err := c.inspector.GetTaskInfo(d.Queue(), d.TaskID())
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("notifier: read queued %s: %w", d.ID, err)
	}
	// Only compared, never delivered: the worker checks seals.
	queued, err := tasks.Decode(info.Payload)
	if err != nil {
		return nil, false, fmt.Errorf("notifier: read queued %s: %w", d.ID, err)
	}
	if ingest.SameContent(queued.EventType, queued.Payload, d.EventType, d.Payload) {
		return nil, false, nil
	}
	return &ConflictError{ID: d.ID.String(), QueuedHash: ingest.PayloadHash(queued.Payload),
		RejectedHash: ingest.PayloadHash(d.Payload), TypeDiffers: queued.EventType != d.EventType}, false, nil
}

// enqueueOnce puts task on Asynq for d. created is false when Redis already
// held a task with d's id and the same content (the notification is on its
// way); a task with other content is a *ConflictError. A task that ended
// between the refusal and the comparison is enqueued again, a bounded number
// of times: the worker then compares against Postgres.
func (c *Client) enqueueOnce(ctx context.Context, d *tasks.Deliver) (created bool, err error) {
	for try := 0; ; try++ {
		_, err = tasks.Enqueue(ctx, c.asynq, c.opts.keys, d)
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			return err == nil, err
		}
		conflict, gone, err := c.compareQueued(d)
		switch {
		case err != nil:
			return false, err
		case conflict != nil:
			return false, conflict
		case !gone || try == 2:
			return false, nil
		}
	}
}
