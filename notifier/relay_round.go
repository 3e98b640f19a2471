package notifier

// One relay round: lock the oldest unsent rows, enqueue each, and mark them
// sent, dead or failed in the same transaction.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// markTimeout bounds marking rows sent after the relay was told to stop:
// finishing the round spares the next relay re-sending them.
const markTimeout = 10 * time.Second

type outboxRow struct {
	id             int64
	notificationID uuid.UUID
	receiverID     uuid.UUID
	eventType      string
	key            string
	callbackURL    string
	payload        []byte
	createdAt      time.Time
}

// deadRow is a row given up on.
type deadRow struct {
	id     int64
	reason string // metric label
	err    string
}

// lockRows reads the rows a query (from FROM on) selects and locks.
func lockRows(ctx context.Context, tx pgx.Tx, from string, args ...any) ([]outboxRow, error) {
	rows, err := tx.Query(ctx, `SELECT id, notification_id, receiver_id, event_type, idempotency_key, callback_url, payload, created_at `+from, args...)
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	var batch []outboxRow
	var row outboxRow
	_, err = pgx.ForEachRow(rows, []any{&row.id, &row.notificationID, &row.receiverID, &row.eventType,
		&row.key, &row.callbackURL, &row.payload, &row.createdAt}, func() error {
		batch = append(batch, row)
		row.payload = nil // ForEachRow reuses the targets
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	return batch, nil
}

// relayBatch runs one round and returns how many rows it took. An error
// means the round, or part of it, must be retried.
func (r *Relay) relayBatch(ctx context.Context, table string) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		outboxErrors.Inc()
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
		defer cancel()
		_ = tx.Rollback(rctx) // no-op after Commit
	}()
	t := pgx.Identifier{table}.Sanitize()
	batch, err := lockRows(ctx, tx, `FROM `+t+` WHERE sent_at IS NULL AND dead_at IS NULL
		ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, r.opts.batch)
	if err != nil {
		outboxErrors.Inc()
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}

	var (
		sent    []int64
		dead    []deadRow
		failed  int64 // the row a transient error stopped the round at
		failErr error
	)
rows:
	for i := range batch {
		if ctx.Err() != nil {
			break // shutting down: mark what was enqueued and leave
		}
		_, dr, err := r.send(ctx, &batch[i])
		switch {
		case dr != nil:
			dead = append(dead, *dr)
			r.logDead(&batch[i], dr)
		case err != nil:
			if ctx.Err() == nil {
				failed, failErr = batch[i].id, err
			}
			break rows // keep order: later rows wait for this one
		default:
			sent = append(sent, batch[i].id)
		}
	}
	if h := r.opts.afterEnqueue; h != nil && len(sent) > 0 {
		h(sent)
	}

	// Marking runs even if ctx ended meanwhile: the rows are enqueued, and
	// recording that spares a re-send.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	b := &pgx.Batch{}
	if len(sent) > 0 {
		b.Queue(`UPDATE `+t+` SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1)`, sent)
	}
	queueDead(b, t, dead)
	if failErr != nil {
		b.Queue(`UPDATE `+t+` SET attempts = attempts + 1, last_error = $2 WHERE id = $1`, failed, failErr.Error())
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(mctx, b).Close(); err != nil {
			outboxErrors.Inc()
			return len(batch), fmt.Errorf("mark %d sent: %w", len(sent), err)
		}
	}
	if err := tx.Commit(mctx); err != nil {
		outboxErrors.Inc()
		return len(batch), fmt.Errorf("commit: %w", err)
	}
	outboxRelayed.Add(float64(len(sent)))
	if len(sent) > 0 {
		r.opts.logger.Debug("outbox rows relayed", "count", len(sent), "first_id", sent[0], "last_id", sent[len(sent)-1])
	}
	return len(batch), failErr
}

// logDead reports a row given up on.
func (r *Relay) logDead(row *outboxRow, dr *deadRow) {
	outboxFailed.WithLabelValues(dr.reason).Inc()
	r.opts.logger.Error("outbox row is dead: not sending it", "outbox_id", dr.id,
		"notification_id", row.notificationID, "receiver_id", row.receiverID,
		"reason", dr.reason, "err", dr.err)
}

// queueDead adds marking dead rows to b.
func queueDead(b *pgx.Batch, t string, dead []deadRow) {
	if len(dead) == 0 {
		return
	}
	ids, msgs := make([]int64, len(dead)), make([]string, len(dead))
	for i, d := range dead {
		ids[i], msgs[i] = d.id, d.err
	}
	b.Queue(`UPDATE `+t+` o SET dead_at = now(), attempts = o.attempts + 1, last_error = d.msg
		FROM unnest($1::bigint[], $2::text[]) AS d(id, msg) WHERE o.id = d.id`, ids, msgs)
}

// send enqueues one row. It returns a deadRow if the row can never be sent,
// an error if it cannot be sent now; created is false when Redis already
// held a task with the same id (the notification is on its way).
func (r *Relay) send(ctx context.Context, row *outboxRow) (created bool, _ *deadRow, _ error) {
	// Rows may have been written by other means than EnqueueTx (plain SQL
	// from a producer in another language), so they are validated again, by
	// the same code, and their id must be the one notifyd derives.
	d, err := r.client.prepare(Notification{
		ReceiverID: row.receiverID.String(), EventType: row.eventType, IdempotencyKey: row.key,
		CallbackURL: row.callbackURL, Payload: row.payload,
	})
	if err != nil {
		return false, &deadRow{row.id, "invalid", err.Error()}, nil
	}
	if d.ID != row.notificationID {
		return false, &deadRow{row.id, "invalid", fmt.Sprintf("notification_id %s is not the id derived from receiver_id and idempotency_key (%s)", row.notificationID, d.ID)}, nil
	}
	err = r.client.checkReceiver(ctx, d.ReceiverID)
	switch {
	case errors.Is(err, ErrUnknownReceiver):
		return false, &deadRow{row.id, "unknown_receiver", err.Error()}, nil
	case errors.Is(err, ErrReceiverInactive):
		return false, &deadRow{row.id, "inactive_receiver", err.Error()}, nil
	case errors.Is(err, ErrRegistryUnavailable):
		outboxFailed.WithLabelValues("registry_unavailable").Inc()
		return false, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	case err != nil:
		outboxFailed.WithLabelValues("redis").Inc()
		return false, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	}
	if err := r.client.checkCallbackHost(ctx, d); errors.Is(err, ErrCallbackHostNotAllowed) {
		return false, &deadRow{row.id, "callback_host", err.Error()}, nil
	} else if err != nil {
		return false, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	}
	// The producer handed the notification in when it wrote the row; the
	// queueing-delay metric then includes the time spent in the outbox.
	d.EnqueuedAt = row.createdAt.UTC()
	created, err = r.client.enqueue(ctx, d)
	if errors.Is(err, ErrIdempotencyConflict) {
		// Another row (or a Notify) used the key first, with other
		// content: that one is the notification; this row never will be.
		return false, &deadRow{row.id, "idempotency_conflict", err.Error()}, nil
	}
	if err != nil {
		outboxFailed.WithLabelValues("redis").Inc()
		return false, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	}
	return created, nil, nil
}
