package notifier

import (
	"cmp"
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// maxConfirmRounds bounds the confirmation batches one poll runs, so that a
// large unconfirmed backlog does not hold back sending new rows.
const maxConfirmRounds = 10

// confirmAll confirms or re-sends the rows sent longer than the grace ago.
func (r *Relay) confirmAll(ctx context.Context, table string) {
	for range maxConfirmRounds {
		n, err := r.confirmBatch(ctx, table)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			outboxConfirmErrors.Inc()
			r.opts.logger.Warn("outbox confirmation round failed; retrying", "err", err)
			return
		}
		if n < r.opts.batch {
			return
		}
	}
}

// confirmBatch takes the oldest sent rows unconfirmed for the grace, asks
// the Confirmer which notifications notifyd has recorded, marks those rows
// confirmed and enqueues the others again. It returns how many rows it took.
func (r *Relay) confirmBatch(ctx context.Context, table string) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
		defer cancel()
		_ = tx.Rollback(rctx) // no-op after Commit
	}()
	t := pgx.Identifier{table}.Sanitize()
	batch, err := lockRows(ctx, tx, `FROM `+t+`
		WHERE sent_at IS NOT NULL AND confirmed_at IS NULL AND dead_at IS NULL
			AND sent_at < now() - make_interval(secs => $1)
		ORDER BY sent_at LIMIT $2 FOR UPDATE SKIP LOCKED`, r.opts.grace.Seconds(), r.opts.batch)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	ids := make([]uuid.UUID, len(batch))
	for i := range batch {
		ids[i] = batch[i].notificationID
	}
	recorded, err := r.opts.confirmer.Recorded(ctx, ids)
	if err != nil {
		return len(batch), fmt.Errorf("confirm: %w", err)
	}

	var confirmed, resent, queued []int64
	var dead []deadRow
	var unrecorded []outboxRow
	for i := range batch {
		if recorded[batch[i].notificationID] {
			confirmed = append(confirmed, batch[i].id)
		} else {
			unrecorded = append(unrecorded, batch[i])
		}
	}
	var sendErr error // rows that failed keep their grace: tried again next round
	for i, o := range r.sendRows(ctx, unrecorded) {
		row := &unrecorded[i]
		switch {
		case o.dead != nil:
			dead = append(dead, *o.dead)
			r.logDead(row, o.dead)
		case o.err != nil:
			sendErr = cmp.Or(sendErr, o.err)
		case o.created:
			resent = append(resent, row.id)
			r.opts.logger.Warn("outbox row re-sent: notifyd had not recorded its notification and Redis no longer held it",
				"outbox_id", row.id, "notification_id", row.notificationID, "receiver_id", row.receiverID)
		case o.sent:
			queued = append(queued, row.id)
		}
	}
	if err := r.markConfirmRound(ctx, tx, t, confirmed, resent, queued, dead); err != nil {
		return len(batch), err
	}
	outboxConfirmed.Add(float64(len(confirmed)))
	outboxResent.WithLabelValues("resent").Add(float64(len(resent)))
	outboxResent.WithLabelValues("still_queued").Add(float64(len(queued)))
	if sendErr != nil {
		return len(batch), sendErr
	}
	return len(batch), nil
}

// markConfirmRound records a confirmation round's outcome and commits. A
// re-sent or still-queued row starts a new grace.
func (r *Relay) markConfirmRound(ctx context.Context, tx pgx.Tx, t string, confirmed, resent, queued []int64, dead []deadRow) error {
	// Marking runs even if ctx ended meanwhile: it spares a re-send.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	b := &pgx.Batch{}
	if len(confirmed) > 0 {
		b.Queue(`UPDATE `+t+` SET confirmed_at = now(), last_error = NULL WHERE id = ANY($1)`, confirmed)
	}
	if len(resent) > 0 {
		b.Queue(`UPDATE `+t+` SET sent_at = now(), resends = resends + 1,
			last_error = 'not recorded by notifyd after the grace and gone from Redis: sent again' WHERE id = ANY($1)`, resent)
	}
	if len(queued) > 0 {
		b.Queue(`UPDATE `+t+` SET sent_at = now() WHERE id = ANY($1)`, queued)
	}
	queueDead(b, t, dead)
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(mctx, b).Close(); err != nil {
		return fmt.Errorf("mark confirmation round: %w", err)
	}
	if err := tx.Commit(mctx); err != nil {
		return fmt.Errorf("commit confirmation round: %w", err)
	}
	return nil
}
