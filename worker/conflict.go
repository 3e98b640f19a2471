package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

// contentStore reads a stored notification's content.
type contentStore interface {
	GetNotification(ctx context.Context, id uuid.UUID) (*store.Notification, error)
}

// mayConflict tells the first-attempt tasks whose content can differ from
// the notification on record: a Go client's or outbox relay's task for a key
// already recorded (the producer used it again after its first task had
// left Redis, where Notify can no longer compare). Such a task carries the
// producer's own time; every task built from the record (HTTP ingest,
// re-drive) carries the recorded created_at, so those cost no extra read.
func mayConflict(d *tasks.Deliver, st *store.DeliveryState) bool {
	return d.Attempt == 1 && !d.EnqueuedAt.Equal(st.CreatedAt)
}

// checkContent compares d with its notification on record. A different
// event type or payload is an idempotency conflict the producer could not be
// told of: the task is dropped (conflict true; the recorded notification
// stands, and the re-drive job re-queues it from Postgres if it still needs
// attempts), counted and logged with both payloads' hashes. Dropped means
// completed, not archived: an archived task would keep its id taken in
// Redis, and Notify would take a later task for it as queued.
func (h *handler) checkContent(ctx context.Context, d *tasks.Deliver) (conflict bool, err error) {
	n, err := h.contents.GetNotification(ctx, d.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // deleted meanwhile by retention: nothing left to differ from
	}
	if err != nil {
		return false, h.infra("postgres", fmt.Errorf("deliver %s: compare content: %w", d.ID, err))
	}
	if ingest.SameContent(n.EventType, n.Payload, d.EventType, d.Payload) {
		return false, nil
	}
	metrics.IdempotencyConflicts.WithLabelValues("worker").Inc()
	h.logger.Warn("idempotency conflict: a producer used this key again with a different event type or payload; the recorded notification stands and the new one is dropped",
		"notification_id", d.ID, "receiver_id", d.ReceiverID, "idempotency_key", d.IdempotencyKey,
		"recorded_event_type", n.EventType, "recorded_payload", ingest.PayloadHash(n.Payload),
		"dropped_event_type", d.EventType, "dropped_payload", ingest.PayloadHash(d.Payload))
	return true, nil
}
