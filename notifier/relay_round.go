package notifier

// One relay round: lock the oldest unsent rows, enqueue them (one write for
// the round, internal/enqueue), and mark them sent, dead or failed in the
// same transaction.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/tasks"
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
		failed  []deadRow // rows a transient error kept out of Redis
		failErr error
	)
	for i, o := range r.sendRows(ctx, batch) {
		switch {
		case o.dead != nil:
			dead = append(dead, *o.dead)
			r.logDead(&batch[i], o.dead)
		case o.err != nil:
			failed = append(failed, deadRow{id: batch[i].id, err: o.err.Error()})
			if failErr == nil {
				failErr = o.err
			}
		case o.sent:
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
	queueFailed(b, t, failed)
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

// queueFailed adds counting a failed try of each of rows to b.
func queueFailed(b *pgx.Batch, t string, rows []deadRow) {
	if len(rows) == 0 {
		return
	}
	ids, msgs := make([]int64, len(rows)), make([]string, len(rows))
	for i, d := range rows {
		ids[i], msgs[i] = d.id, d.err
	}
	b.Queue(`UPDATE `+t+` o SET attempts = o.attempts + 1, last_error = d.msg
		FROM unnest($1::bigint[], $2::text[]) AS d(id, msg) WHERE o.id = d.id`, ids, msgs)
}

// rowOutcome is what sendRows did with one row: sent (in Redis now,
// created when by this call), dead, failed with err (transient: retry), or
// none of these (held back behind a row that failed, or shutting down).
type rowOutcome struct {
	sent, created bool
	dead          *deadRow
	err           error
}

// sendRows enqueues rows, in one write for all that pass their checks (a
// batch task per queue and ~100 rows, internal/enqueue), with the
// replica acknowledgement the client asks for. A row is sent only when its
// notification is in Redis (and, with WithReplicaAck, on the replicas):
// any row whose write or acknowledgement failed gets err and is tried
// again, whatever happened to the others. A transient error while checking
// a row holds back the rows after it (they are not written at all), so
// that with one relay rows reach Redis in order as far as that is kept.
func (r *Relay) sendRows(ctx context.Context, rows []outboxRow) []rowOutcome {
	out := make([]rowOutcome, len(rows))
	ds := make([]*tasks.Deliver, 0, len(rows))
	idx := make([]int, 0, len(rows))
	for i := range rows {
		if ctx.Err() != nil {
			break // shutting down: mark what was enqueued and leave
		}
		d, dr, err := r.admit(ctx, &rows[i])
		if dr != nil {
			out[i].dead = dr
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				out[i].err = err
			}
			break // keep order: later rows wait for this one
		}
		ds, idx = append(ds, d), append(idx, i)
	}
	if len(ds) == 0 {
		return out
	}
	for k, res := range r.client.write(ctx, ds, true) {
		i, o := idx[k], &out[idx[k]]
		switch err := resultError(ds[k], res, res.Err); {
		case errors.Is(err, ErrIdempotencyConflict):
			// Another row (or a Notify) used the key first, with other
			// content: that one is the notification; this row never will be.
			o.dead = &deadRow{rows[i].id, "idempotency_conflict", err.Error()}
		case err != nil && ctx.Err() != nil:
			// Shutting down: not a failure of the row; the next relay sends it.
		case err != nil:
			outboxFailed.WithLabelValues("redis").Inc()
			o.err = fmt.Errorf("outbox row %d: %w", rows[i].id, err)
		default:
			o.sent, o.created = true, res.Status == enqueue.Queued
		}
	}
	return out
}

// admit checks one row and returns its task. It returns a deadRow if the
// row can never be sent, an error if it cannot be sent now.
func (r *Relay) admit(ctx context.Context, row *outboxRow) (*tasks.Deliver, *deadRow, error) {
	// Rows may have been written by other means than EnqueueTx (plain SQL
	// from a producer in another language), so they are validated again, by
	// the same code, and their id must be the one notifyd derives.
	d, err := r.client.prepare(Notification{
		ReceiverID: row.receiverID.String(), EventType: row.eventType, IdempotencyKey: row.key,
		CallbackURL: row.callbackURL, Payload: row.payload,
	})
	if err != nil {
		return nil, &deadRow{row.id, "invalid", err.Error()}, nil
	}
	if d.ID != row.notificationID {
		return nil, &deadRow{row.id, "invalid", fmt.Sprintf("notification_id %s is not the id derived from receiver_id and idempotency_key (%s)", row.notificationID, d.ID)}, nil
	}
	err = r.client.checkReceiver(ctx, d.ReceiverID)
	switch {
	case errors.Is(err, ErrUnknownReceiver):
		return nil, &deadRow{row.id, "unknown_receiver", err.Error()}, nil
	case errors.Is(err, ErrReceiverInactive):
		return nil, &deadRow{row.id, "inactive_receiver", err.Error()}, nil
	case errors.Is(err, ErrRegistryUnavailable):
		outboxFailed.WithLabelValues("registry_unavailable").Inc()
		return nil, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	case err != nil:
		outboxFailed.WithLabelValues("redis").Inc()
		return nil, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	}
	if err := r.client.checkCallbackHost(ctx, d); errors.Is(err, ErrCallbackHostNotAllowed) {
		return nil, &deadRow{row.id, "callback_host", err.Error()}, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	}
	// The producer handed the notification in when it wrote the row; the
	// queueing-delay metric then includes the time spent in the outbox.
	d.EnqueuedAt = row.createdAt.UTC()
	return d, nil, nil
}
