package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors of the manual operations (redeliver, cancel).
var (
	// ErrCancelled: the notification is cancelled; nothing more is sent.
	ErrCancelled = errors.New("notification is cancelled")
	// ErrRedeliveryLimit: the notification has had its share of manual
	// redeliveries.
	ErrRedeliveryLimit = errors.New("manual redelivery limit reached")
	// ErrNotPending: the operation needs a pending notification.
	ErrNotPending = errors.New("notification is not pending")
)

// RequestRedelivery reserves the next manual redelivery number of the
// notification (1, 2, …), at most limit in all. The increment is one atomic
// UPDATE, so concurrent requests get distinct numbers. Cancelled
// notifications give ErrCancelled, exhausted ones ErrRedeliveryLimit,
// unknown ones ErrNotFound.
func (s *Store) RequestRedelivery(ctx context.Context, id uuid.UUID, limit int) (int, error) {
	var n int16
	err := s.pool.QueryRow(ctx, `
		UPDATE notifications SET manual_requests = manual_requests + 1
		WHERE id = $1 AND created_at = `+createdAtOf("$1")+` AND status <> 'cancelled' AND manual_requests < $2
		RETURNING manual_requests`, id, limit).Scan(&n)
	if err == nil {
		return int(n), nil
	}
	if !errors.Is(notFound(err), ErrNotFound) {
		return 0, fmt.Errorf("request redelivery of %s: %w", id, err)
	}
	// Nothing updated: find out why. The row may change in between; the
	// answer is still one that was true a moment ago.
	var status string
	err = s.pool.QueryRow(ctx, `SELECT status FROM notifications WHERE id = $1 AND created_at = `+createdAtOf("$1"), id).Scan(&status)
	switch {
	case err != nil:
		return 0, fmt.Errorf("request redelivery of %s: %w", id, notFound(err))
	case status == StatusCancelled:
		return 0, fmt.Errorf("request redelivery of %s: %w", id, ErrCancelled)
	}
	return 0, fmt.Errorf("request redelivery of %s: %d made: %w", id, limit, ErrRedeliveryLimit)
}

// CancelNotification stops a pending notification and returns it. A
// notification in any other status gives ErrNotPending, together with the
// notification as it is; an unknown one gives ErrNotFound.
//
// Workers check the status before each attempt, so no attempt starts after
// this; one already in flight is still recorded (RecordAttempts keeps the
// cancelled status).
func (s *Store) CancelNotification(ctx context.Context, id uuid.UUID) (*Notification, error) {
	n, err := scanNotification(s.pool.QueryRow(ctx, cancelSQL, id))
	if err == nil {
		return n, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("cancel notification %s: %w", id, err)
	}
	cur, err := s.GetNotification(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("cancel notification %s: %w", id, err)
	}
	return cur, fmt.Errorf("cancel notification %s: it is %s: %w", id, cur.Status, ErrNotPending)
}

var cancelSQL = `UPDATE notifications SET status = 'cancelled', next_attempt_at = NULL
		WHERE id = $1 AND created_at = ` + createdAtOf("$1") + ` AND status = 'pending'
		RETURNING ` + notificationColumns

// recoverBatch re-opens one batch of a receiver's failed notifications
// created in [$2, $3). Rows are locked in index order and re-checked after
// the lock (a manual redelivery may have delivered one meanwhile).
const recoverBatch = `
	WITH c AS (
		SELECT id, created_at FROM notifications
		WHERE receiver_id = $1 AND status = 'failed' AND created_at >= $2 AND created_at < $3
		ORDER BY created_at, id
		LIMIT $4
		FOR UPDATE
	)
	UPDATE notifications SET status = 'pending', max_attempts = attempts + 1, next_attempt_at = now()
	WHERE (id, created_at) IN (SELECT id, created_at FROM c) AND created_at >= $2 AND created_at < $3 AND status = 'failed'
	RETURNING ` + notificationColumns

// RecoverFailed gives every failed notification of receiver created in
// [since, until) one more automatic attempt: each becomes pending with
// max_attempts = attempts+1 and is due now (last_error stays, for the
// record). It works in batches of batchSize rows, each its own short
// transaction, and calls each with every batch once it is committed, so the
// caller can queue the attempts. It returns how many it re-opened.
//
// Calling it twice is harmless: the second call finds those notifications
// pending, not failed. If the caller cannot queue a batch, the rows are
// still pending and due, which is what the re-drive job looks for.
func (s *Store) RecoverFailed(ctx context.Context, receiverID uuid.UUID, since, until time.Time, batchSize int, each func([]*Notification)) (int, error) {
	total := 0
	for {
		batch, err := s.recoverBatch(ctx, receiverID, since, until, batchSize)
		if err != nil {
			return total, fmt.Errorf("recover failed notifications of %s: %w", receiverID, err)
		}
		if len(batch) == 0 {
			return total, nil
		}
		total += len(batch)
		each(batch)
	}
}

func (s *Store) recoverBatch(ctx context.Context, receiverID uuid.UUID, since, until time.Time, batchSize int) ([]*Notification, error) {
	for try := 1; ; try++ {
		rows, err := s.pool.Query(ctx, recoverBatch, receiverID, since, until, batchSize)
		var batch []*Notification
		if err == nil {
			batch, err = scanNotifications(rows)
		}
		// A worker recording a batch of attempts locks rows in another
		// order; Postgres breaks the rare deadlock by aborting one side.
		// The statement is safe to repeat.
		if err != nil && isDeadlock(err) && try < 3 {
			continue
		}
		return batch, err
	}
}

func isDeadlock(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}
