package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLocked: another session holds the advisory lock (another replica is
// running the same job).
var ErrLocked = errors.New("advisory lock held by another session")

// JobLock is a session-level advisory lock held on a connection taken out of
// the pool for the lock's lifetime. Session locks (not transaction locks)
// let the job run its own statements and transactions on other connections;
// if the lock's connection dies, Postgres releases the lock with it.
type JobLock struct {
	conn *pgxpool.Conn
	key  int64
}

// TryJobLock takes the advisory lock key without waiting, or returns
// ErrLocked if another session has it.
func (s *Store) TryJobLock(ctx context.Context, key int64) (*JobLock, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("job lock %d: acquire connection: %w", key, err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		// The outcome is unknown: do not return a connection that may hold the lock.
		conn.Conn().Close(context.Background())
		conn.Release()
		return nil, fmt.Errorf("job lock %d: %w", key, err)
	}
	if !ok {
		conn.Release()
		return nil, ErrLocked
	}
	return &JobLock{conn: conn, key: key}, nil
}

// Release gives the lock up and returns the connection. It must be called
// exactly once; it does not take the job's context because it has to work
// after that context has ended.
func (l *JobLock) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var released bool
	if err := l.conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, l.key).Scan(&released); err != nil || !released {
		// Closing the session is the other way to drop a session lock; a
		// pooled connection still holding it would block the job forever.
		l.conn.Conn().Close(ctx)
	}
	l.conn.Release()
}

// Now is the database clock. Cut-offs of the maintenance jobs are taken from
// it because created_at is Postgres's now() too.
func (s *Store) Now(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return now, fmt.Errorf("database clock: %w", err)
	}
	return now, nil
}

// OverduePending returns up to limit pending notifications whose next
// attempt was due before cutoff, in order of (next_attempt_at, id), starting
// after the keyset (afterDue, afterID); pass the zero time and uuid.Nil for
// the first page. It reads the partial index notifications_pending_due.
func (s *Store) OverduePending(ctx context.Context, cutoff, afterDue time.Time, afterID uuid.UUID, limit int) ([]*Notification, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+notificationColumns+` FROM notifications
		WHERE status = 'pending' AND next_attempt_at < $1
			AND next_attempt_at >= $2 AND (next_attempt_at, id) > ($2, $3)
		ORDER BY next_attempt_at, id
		LIMIT $4`, cutoff, afterDue, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("overdue pending: %w", err)
	}
	defer rows.Close()
	var out []*Notification
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, fmt.Errorf("overdue pending: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("overdue pending: %w", err)
	}
	return out, nil
}

// FailExhausted marks as failed those of ids that are still pending with no
// automatic attempt left (attempts >= max_attempts), setting last_error to
// reason, and returns how many it changed. The condition is checked again in
// the UPDATE, so a notification that moved on in the meantime is left alone.
func (s *Store) FailExhausted(ctx context.Context, ids []uuid.UUID, reason string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE notifications n SET status = 'failed', next_attempt_at = NULL, last_error = $2
		FROM notification_keys k
		WHERE k.id = ANY($1) AND n.id = k.id AND n.created_at = k.created_at
			AND n.status = 'pending' AND n.attempts >= n.max_attempts`, ids, reason)
	if err != nil {
		return 0, fmt.Errorf("fail exhausted notifications: %w", err)
	}
	return tag.RowsAffected(), nil
}

// FailPending marks the notification failed with last_error reason if it is
// still pending, and reports whether it did: for a notification that must
// not be attempted any more (its callback override is no longer allowed)
// and would otherwise stay pending, re-driven for ever.
func (s *Store) FailPending(ctx context.Context, id uuid.UUID, reason string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE notifications SET status = 'failed', next_attempt_at = NULL, last_error = $2
		WHERE id = $1 AND created_at = `+createdAtOf("$1")+` AND status = 'pending'`, id, reason)
	if err != nil {
		return false, fmt.Errorf("fail notification %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DeleteExpired deletes up to limit terminal (delivered, failed, cancelled)
// notifications created before cutoff from the legacy partition (the
// unpartitioned table migration 00010 attached as the partition of
// everything before its cut; daily partitions leave whole, see
// DropPartition), with their attempts, and returns how many of each it
// deleted. It is one short statement so that it never holds locks for
// long; call it in a loop until it deletes nothing. Rows locked by someone
// else (a manual redelivery being recorded) are skipped, not waited for:
// the next run gets them. Pending notifications are never deleted.
func (s *Store) DeleteExpired(ctx context.Context, cutoff time.Time, limit int) (notifications, attempts int64, err error) {
	err = s.pool.QueryRow(ctx, `
		WITH victims AS (
			SELECT id FROM notifications_legacy
			WHERE created_at < $1 AND status <> 'pending'
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		), att AS (
			DELETE FROM delivery_attempts_legacy WHERE notification_id IN (SELECT id FROM victims)
			RETURNING 1
		), del AS (
			DELETE FROM notifications_legacy WHERE id IN (SELECT id FROM victims)
			RETURNING 1
		)
		SELECT (SELECT count(*) FROM del), (SELECT count(*) FROM att)`, cutoff, limit).Scan(&notifications, &attempts)
	if err != nil {
		return 0, 0, fmt.Errorf("delete expired notifications: %w", err)
	}
	return notifications, attempts, nil
}
