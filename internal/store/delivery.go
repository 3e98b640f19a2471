package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// DeliveryState is what a worker needs to know before an attempt.
type DeliveryState struct {
	Status        string
	Attempts      int
	MaxAttempts   int
	NextAttemptAt *time.Time
	CreatedAt     time.Time
	// Inserted is true when this call recorded the notification.
	Inserted bool
}

// BeginDelivery records n if this is the first time anyone sees it (the Go
// client enqueues straight to Redis) and returns its current state, in one
// round trip.
func (s *Store) BeginDelivery(ctx context.Context, n *NewNotification) (DeliveryState, error) {
	var st DeliveryState
	var attempts, maxAttempts int16
	err := s.pool.QueryRow(ctx, `
		WITH ins AS (
			INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts, created_at, next_attempt_at)
			SELECT $1, $2, $3, $4, $5, $6, $7, now(), now() WHERE NOT $8
			ON CONFLICT DO NOTHING
			RETURNING status, attempts, max_attempts, next_attempt_at, created_at, true
		)
		SELECT * FROM ins
		UNION ALL
		SELECT status, attempts, max_attempts, next_attempt_at, created_at, false FROM notifications
		WHERE id = $1 AND NOT EXISTS (SELECT FROM ins)`,
		n.ID, n.ReceiverID, n.EventType, n.IdempotencyKey, nullIfEmpty(n.CallbackURL), n.Payload, n.MaxAttempts, n.ExistingOnly,
	).Scan(&st.Status, &attempts, &maxAttempts, &st.NextAttemptAt, &st.CreatedAt, &st.Inserted)
	if errors.Is(err, ErrNotFound) || errors.Is(notFound(err), ErrNotFound) {
		// A concurrent insert of the same id committed after our snapshot:
		// the row exists now, read it plainly.
		err = s.pool.QueryRow(ctx, `SELECT status, attempts, max_attempts, next_attempt_at, created_at FROM notifications WHERE id = $1`, n.ID).
			Scan(&st.Status, &attempts, &maxAttempts, &st.NextAttemptAt, &st.CreatedAt)
	}
	if err != nil {
		if isForeignKeyViolation(err) {
			return st, fmt.Errorf("begin delivery %s: %w", n.ID, ErrUnknownReceiver)
		}
		return st, fmt.Errorf("begin delivery %s: %w", n.ID, notFound(err))
	}
	st.Attempts, st.MaxAttempts = int(attempts), int(maxAttempts)
	return st, nil
}

// newStatus is the status rule of RecordAttempts as a SQL expression over
// the notification n and the recorded attempt u. It is written inline in the
// UPDATE (not computed in a CTE) so that Postgres re-evaluates it against
// the latest row version when a concurrent cancel touched the same row.
const newStatus = `(CASE
	WHEN u.status IS NULL THEN n.status
	WHEN n.status = 'pending' THEN u.status
	WHEN u.no < 0 AND n.status = 'failed' AND u.status = 'delivered' THEN u.status
	ELSE n.status END)`

// AttemptRecord is an attempt together with what it means for its
// notification.
type AttemptRecord struct {
	Attempt
	// NewStatus is the notification's status after an automatic attempt
	// (pending, delivered or failed). For a manual attempt it is delivered on
	// success and "" otherwise (no change).
	NewStatus string
	// NextAttemptAt is when the next automatic attempt is due; used only
	// when NewStatus is pending.
	NextAttemptAt time.Time
}

// RecordAttempts writes a batch of attempts and updates their notifications
// in one statement. It is idempotent: an attempt already on record (same
// notification and number) is skipped together with its update, so a batch
// can be retried safely after an error whose outcome is unknown.
//
// Status rules: an automatic attempt moves a pending notification to its
// NewStatus; a successful manual redelivery moves a pending or failed one to
// delivered; a cancelled or delivered notification keeps its status. The
// attempts counter only ever grows, and counts automatic attempts.
//
// The caller must not put two attempts of one notification in one batch.
func (s *Store) RecordAttempts(ctx context.Context, batch []AttemptRecord) error {
	if len(batch) == 0 {
		return nil
	}
	n := len(batch)
	ids := make([][16]byte, n)
	nos := make([]int16, n)
	started := make([]time.Time, n)
	durations := make([]int32, n)
	codes := make([]*int16, n)
	outcomes := make([]string, n)
	errs := make([]*string, n)
	bodies := make([]*string, n)
	statuses := make([]*string, n)
	nexts := make([]*time.Time, n)
	for i := range batch {
		r := &batch[i]
		ids[i] = r.NotificationID
		nos[i] = int16(r.AttemptNo)
		started[i] = r.StartedAt
		durations[i] = int32(r.Duration / time.Millisecond)
		if r.StatusCode != 0 {
			c := int16(r.StatusCode)
			codes[i] = &c
		}
		outcomes[i] = r.Outcome
		errs[i] = nullIfEmpty(r.Error)
		bodies[i] = nullIfEmpty(r.ResponseBody)
		statuses[i] = nullIfEmpty(r.NewStatus)
		if r.NewStatus == StatusPending {
			nexts[i] = &r.NextAttemptAt
		}
	}
	_, err := s.pool.Exec(ctx, `
		WITH u AS (
			SELECT * FROM unnest($1::uuid[], $2::int2[], $3::timestamptz[], $4::int4[], $5::int2[],
				$6::text[]::attempt_outcome[], $7::text[], $8::text[], $9::text[]::notification_status[], $10::timestamptz[])
				AS u(id, no, started, ms, code, outcome, err, body, status, next)
		), ins AS (
			INSERT INTO delivery_attempts (notification_id, attempt_no, started_at, duration_ms, status_code, outcome, error, response_body)
			SELECT id, no, started, ms, code, outcome, err, body FROM u
			ON CONFLICT DO NOTHING
			RETURNING notification_id, attempt_no
		)
		UPDATE notifications n SET
			attempts = CASE WHEN u.no > 0 THEN greatest(n.attempts, u.no) ELSE n.attempts END,
			status = `+newStatus+`,
			next_attempt_at = CASE WHEN `+newStatus+` <> 'pending' THEN NULL
				WHEN u.no > 0 THEN u.next ELSE n.next_attempt_at END,
			delivered_at = CASE WHEN n.delivered_at IS NULL AND `+newStatus+` = 'delivered'
				THEN u.started + make_interval(secs => u.ms / 1000.0) ELSE n.delivered_at END,
			last_attempt_at = greatest(n.last_attempt_at, u.started),
			last_status_code = CASE WHEN n.last_attempt_at > u.started THEN n.last_status_code ELSE u.code END,
			last_error = CASE WHEN n.last_attempt_at > u.started THEN n.last_error ELSE u.err END
		FROM u
		JOIN ins ON ins.notification_id = u.id AND ins.attempt_no = u.no
		WHERE n.id = u.id`,
		ids, nos, started, durations, codes, outcomes, errs, bodies, statuses, nexts)
	if err != nil {
		return fmt.Errorf("record %d attempts: %w", n, err)
	}
	return nil
}

// BeginDeliveries is BeginDelivery for a batch in one statement: workers
// group the notifications their handlers start at the same moment, which
// costs Postgres a fraction of one statement each. The result maps id to
// state; an id missing from it (a concurrent insert of that id committed
// after the statement's snapshot, or an ExistingOnly one that does not
// exist) should be retried with BeginDelivery.
// The receivers must exist: one unknown receiver fails the whole batch.
func (s *Store) BeginDeliveries(ctx context.Context, batch []*NewNotification) (map[uuid.UUID]DeliveryState, error) {
	n := len(batch)
	ids := make([]uuid.UUID, n)
	receivers := make([]uuid.UUID, n)
	types := make([]string, n)
	keys := make([]string, n)
	urls := make([]*string, n)
	payloads := make([][]byte, n)
	maxAttempts := make([]int16, n)
	create := make([]bool, n)
	for i, nn := range batch {
		ids[i], receivers[i], types[i], keys[i] = nn.ID, nn.ReceiverID, nn.EventType, nn.IdempotencyKey
		urls[i], payloads[i], maxAttempts[i] = nullIfEmpty(nn.CallbackURL), nn.Payload, int16(nn.MaxAttempts)
		create[i] = !nn.ExistingOnly
	}
	rows, err := s.pool.Query(ctx, `
		WITH u AS (
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int2[], $8::bool[])
				AS u(id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts, may_create)
		), ins AS (
			INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts, created_at, next_attempt_at)
			SELECT id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts, now(), now() FROM u
			WHERE may_create
			ON CONFLICT DO NOTHING
			RETURNING id, status, attempts, max_attempts, next_attempt_at, created_at
		)
		SELECT *, true FROM ins
		UNION ALL
		SELECT n.id, n.status, n.attempts, n.max_attempts, n.next_attempt_at, n.created_at, false
		FROM notifications n JOIN u ON n.id = u.id
		WHERE NOT EXISTS (SELECT FROM ins WHERE ins.id = u.id)`,
		ids, receivers, types, keys, urls, payloads, maxAttempts, create)
	if err != nil {
		return nil, fmt.Errorf("begin %d deliveries: %w", n, err)
	}
	out := make(map[uuid.UUID]DeliveryState, n)
	var id uuid.UUID
	var st DeliveryState
	var attempts, maxA int16
	_, err = pgx.ForEachRow(rows, []any{&id, &st.Status, &attempts, &maxA, &st.NextAttemptAt, &st.CreatedAt, &st.Inserted}, func() error {
		st.Attempts, st.MaxAttempts = int(attempts), int(maxA)
		if prev, dup := out[id]; dup && prev.Inserted {
			return nil // the same id twice in the batch: keep the insert
		}
		out[id] = st
		st.NextAttemptAt = nil
		return nil
	})
	if err != nil {
		if isForeignKeyViolation(err) {
			return nil, fmt.Errorf("begin %d deliveries: %w", n, ErrUnknownReceiver)
		}
		return nil, fmt.Errorf("begin %d deliveries: %w", n, err)
	}
	return out, nil
}
