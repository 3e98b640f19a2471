package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Acknowledge records a pull receiver's acknowledgement of its
// notifications ids: each that is pending or failed becomes delivered
// (delivered_at now), ending its offers. It returns each id's status
// afterwards; ids that are not the receiver's are absent, exactly like ids
// that do not exist. Acknowledging twice changes nothing the second time;
// changed counts the notifications this call delivered.
//
// The stream may send a notification before a worker has made its first
// offer (it sends what is pending in Postgres, and the HTTP ingest writes
// there before queueing). Acknowledging such a notification records that
// offer as attempt 1 (outcome offered, at the acknowledgement's time), so
// that every delivered notification has an attempt on record; the worker's
// own attempt 1 then finds it delivered and makes none.
//
// A failed notification may still be acknowledged: the receiver processed
// it after its last offer (found by reconciliation, say), as a successful
// manual redelivery delivers a failed push notification.
func (s *Store) Acknowledge(ctx context.Context, receiver uuid.UUID, ids []uuid.UUID) (status map[uuid.UUID]string, changed int, err error) {
	keys := make([][16]byte, len(ids))
	for i, id := range ids {
		keys[i] = id
	}
	status = make(map[uuid.UUID]string, len(ids))
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The attempt first, the notification second: the order in which
		// a worker records an attempt (RecordAttempts), so that an
		// acknowledgement racing the worker's first offer waits for it
		// instead of deadlocking with it.
		_, err := tx.Exec(ctx, `
			INSERT INTO delivery_attempts (notification_id, attempt_no, started_at, duration_ms, outcome, notification_created_at)
			SELECT n.id, 1, now(), 0, 'offered', n.created_at FROM `+keyedNotifications("$2")+`
				AND n.receiver_id = $1 AND n.status IN ('pending', 'failed') AND n.attempts = 0
			ON CONFLICT DO NOTHING`, receiver, keys)
		if err != nil {
			return err
		}
		// The second branch reads the statement's snapshot, from before
		// the UPDATE: it answers for the rows the UPDATE did not change.
		rows, err := tx.Query(ctx, `
			WITH acked AS (
				UPDATE notifications n SET status = 'delivered', delivered_at = now(), next_attempt_at = NULL,
					attempts = greatest(n.attempts, 1), last_attempt_at = coalesce(n.last_attempt_at, now())
				FROM notification_keys k
				WHERE k.id = ANY($2) AND n.id = k.id AND n.created_at = k.created_at
					AND n.receiver_id = $1 AND n.status IN ('pending', 'failed')
				RETURNING n.id
			)
			SELECT id, 'delivered', true FROM acked
			UNION ALL
			SELECT n.id, n.status::text, false FROM `+keyedNotifications("$2")+`
				AND n.receiver_id = $1 AND n.id NOT IN (SELECT id FROM acked)`, receiver, keys)
		if err != nil {
			return err
		}
		var id uuid.UUID
		var st string
		var now bool
		_, err = pgx.ForEachRow(rows, []any{(*[16]byte)(&id), &st, &now}, func() error {
			status[id] = st
			if now {
				changed++
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("acknowledge %d notifications: %w", len(ids), err)
	}
	return status, changed, nil
}
