package notifier

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/tasks"
)

// Result is one notification's outcome in NotifyMany.
type Result struct {
	// ID is the notification's id; set whenever the notification was
	// valid, including with a *ConflictError (the id the key names).
	ID string
	// Queued is true when a new task holds it, false when a task with the
	// same content was already in Redis (success too) or Err is set.
	Queued bool
	// Err is nil on success, else an *ItemError naming the item.
	Err error
}

// ItemError is the error of item Index of a NotifyMany call. It unwraps to
// what Notify would have returned for that item: a *ValidationError (its
// Field names the field), ErrUnknownReceiver, ErrReceiverInactive, a
// *ConflictError, a *ReplicaAckError, or a Redis error.
type ItemError struct {
	Index int
	Err   error
}

func (e *ItemError) Error() string {
	return fmt.Sprintf("notifier: notification %d: %v", e.Index, e.Err)
}

// Unwrap makes errors.Is and errors.As see the item's own error.
func (e *ItemError) Unwrap() error { return e.Err }

// NotifyMany enqueues ns, for producers that already hold a batch: the
// notifications that share a queue go in tasks of up to 100, one Redis
// round trip each, instead of one per notification. Each item keeps
// Notify's contract: its id, idempotency (a repeat is success with Queued
// false; the same key with other content is a *ConflictError, also for
// two items of ns), and it is in Redis when NotifyMany returns without an
// error for it. Results are in the order of ns; the error is nil when
// every item succeeded, else the items' *ItemErrors joined (errors.Is and
// errors.As see each).
func (c *Client) NotifyMany(ctx context.Context, ns []Notification) ([]Result, error) {
	res := make([]Result, len(ns))
	ds := make([]*tasks.Deliver, 0, len(ns))
	idx := make([]int, 0, len(ns))
	now := time.Now().UTC()
	for i, n := range ns {
		d, err := c.admit(ctx, n)
		if err != nil {
			res[i].Err = err
			continue
		}
		d.EnqueuedAt = now
		ds = append(ds, d)
		idx = append(idx, i)
	}
	if len(ds) > 0 {
		for k, r := range c.write(ctx, ds, true) {
			i := idx[k]
			res[i].ID = ds[k].ID.String()
			res[i].Queued = r.Status == enqueue.Queued && r.Err == nil
			res[i].Err = resultError(ds[k], r, r.Err)
		}
	}
	var errs []error
	for i := range res {
		if res[i].Err != nil {
			res[i].Err = &ItemError{Index: i, Err: res[i].Err}
			errs = append(errs, res[i].Err)
		}
		if res[i].Err != nil && !errors.Is(res[i].Err, ErrIdempotencyConflict) {
			res[i].ID = ""
		}
	}
	return res, errors.Join(errs...)
}

// admit validates n and checks its receiver and callback host, as Notify
// does.
func (c *Client) admit(ctx context.Context, n Notification) (*tasks.Deliver, error) {
	d, err := c.prepare(n)
	if err != nil {
		return nil, err
	}
	if err := c.checkReceiver(ctx, d.ReceiverID); err != nil {
		return nil, err
	}
	if err := c.checkCallbackHost(ctx, d); err != nil {
		return nil, err
	}
	return d, nil
}
