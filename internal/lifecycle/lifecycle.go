// Package lifecycle says what a receiver's operational events are: the
// payload of receiver.failing, receiver.disabled, receiver.recovered and
// receiver.enabled, and which notifications announce each (one to the
// operator receiver, one to the receiver's own status_callback_url).
//
// The transitions themselves are SQL in internal/store (lifecycle.go), run
// by the scheduler's lifecycle job and the API's enable; the notifications
// this package makes are recorded in the same transaction and delivered by
// the workers like any other (signed, retried, on record).
//
// Loops are cut here and in the worker: nothing about the operator receiver
// is sent to the operator receiver (it is never disabled, and its failing
// is logged and counted instead), and a receiver's own events neither count
// for its health nor wait for its circuit (worker: statusEvent).
package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tasks"
)

// Event is the payload ("data") of an operational event.
type Event struct {
	ReceiverID     string     `json:"receiver_id"`
	ReceiverName   string     `json:"receiver_name"`
	Status         string     `json:"status"`
	PreviousStatus string     `json:"previous_status"`
	OccurredAt     time.Time  `json:"occurred_at"`
	FailingSince   *time.Time `json:"failing_since"`
	LastSuccessAt  *time.Time `json:"last_success_at"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
}

// Events makes the notifications of transitions; Defaults is the service
// retry policy (NOTIFYD_RETRY_*) receivers inherit.
type Events struct {
	Defaults retry.Policy
}

// IsOwnEvent reports whether a notification of receiver r is one of r's own
// operational events (sent to its status_callback_url by notifyd). A
// producer could send one like it, to the same URL: no harm, it only goes
// where the receiver asked for its events.
func IsOwnEvent(r *store.Receiver, eventType, callbackURL string) bool {
	return r.StatusCallbackURL != "" && callbackURL == r.StatusCallbackURL && strings.HasPrefix(eventType, "receiver.")
}

// Make is a store.EventMaker.
func (e Events) Make(t store.Transition, operator *store.Receiver) []store.NewNotification {
	r := t.Receiver
	payload, err := json.Marshal(Event{
		ReceiverID: r.ID.String(), ReceiverName: r.Name, Status: r.Status, PreviousStatus: t.From,
		OccurredAt: t.At.UTC(), FailingSince: r.FailingSince, LastSuccessAt: r.LastSuccessAt,
		DisabledAt: r.DisabledAt, DisabledReason: r.DisabledReason,
	})
	if err != nil {
		panic(err) // plain values only: cannot fail
	}
	// One key per receiver and moment of change: the same transition made
	// again (a retried transaction) is the same notification.
	key := "notifyd:" + t.Event + ":" + r.ID.String() + ":" + t.At.UTC().Format(time.RFC3339Nano)
	var out []store.NewNotification
	if operator != nil && operator.ID != r.ID {
		out = append(out, e.notification(operator, t.Event, key, "", payload))
	}
	if r.StatusCallbackURL != "" {
		out = append(out, e.notification(r, t.Event, key, r.StatusCallbackURL, payload))
	}
	return out
}

func (e Events) notification(to *store.Receiver, event, key, callbackURL string, payload []byte) store.NewNotification {
	policy := e.Defaults
	if to.Retry != nil {
		policy = to.Retry.Merge(e.Defaults)
	}
	return store.NewNotification{
		ID: tasks.NotificationID(to.ID, key), ReceiverID: to.ID, EventType: event, IdempotencyKey: key,
		CallbackURL: callbackURL, Payload: payload, MaxAttempts: policy.MaxAttempts,
	}
}

// Queue queues the first attempt of each event notification, due now. An
// error leaves the rest pending in Postgres, where the re-drive job finds
// them; the caller logs it.
func Queue(ctx context.Context, q tasks.Enqueuer, keys *taskauth.Keyring, ns []*store.Notification) error {
	for _, n := range ns {
		d := tasks.Deliver{ID: n.ID, ReceiverID: n.ReceiverID, EventType: n.EventType, IdempotencyKey: n.IdempotencyKey,
			Payload: n.Payload, EnqueuedAt: n.CreatedAt}
		if n.CallbackURL != nil {
			d.CallbackURL = *n.CallbackURL
		}
		if err := tasks.Schedule(ctx, q, keys, d, 1, n.CreatedAt); err != nil {
			return fmt.Errorf("queue event %s %s: %w", n.EventType, n.ID, err)
		}
	}
	return nil
}
