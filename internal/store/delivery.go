package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// DeliveryState is what a worker needs to know before an attempt.
type DeliveryState struct {
	Status        string
	Attempts      int
	MaxAttempts   int
	NextAttemptAt *time.Time
	CreatedAt     time.Time
}

// DeliveryStates looks up the state of a batch of notifications in one
// statement (workers group the look-ups of the deliveries they start at the
// same moment). An id missing from the result is not on record: either its
// first attempt has not been recorded yet (the Go client enqueues straight
// to Redis, and the first attempt writes the notification together with its
// outcome; see AttemptRecord.Create), or retention deleted it.
func (s *Store) DeliveryStates(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]DeliveryState, error) {
	// [16]byte, not uuid.UUID: pgx encodes and decodes those directly,
	// where a uuid.UUID goes through its text form.
	keys := make([][16]byte, len(ids))
	for i, id := range ids {
		keys[i] = id
	}
	rows, err := s.pool.Query(ctx, deliveryStatesSQL, customPlan, keys)
	if err != nil {
		return nil, fmt.Errorf("look up %d deliveries: %w", len(ids), err)
	}
	out := make(map[uuid.UUID]DeliveryState, len(ids))
	var id uuid.UUID
	var st DeliveryState
	var attempts, maxA int16
	_, err = pgx.ForEachRow(rows, []any{(*[16]byte)(&id), &st.Status, &attempts, &maxA, &st.NextAttemptAt, &st.CreatedAt}, func() error {
		st.Attempts, st.MaxAttempts = int(attempts), int(maxA)
		out[id] = st
		st.NextAttemptAt = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up %d deliveries: %w", len(ids), err)
	}
	return out, nil
}

var deliveryStatesSQL = `SELECT n.id, n.status, n.attempts, n.max_attempts, n.next_attempt_at, n.created_at
		FROM ` + keyedNotifications("$1")

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
	// Create, for the first attempt of a notification that is not on record
	// yet, is the notification: it is written once, already in its state
	// after this attempt, instead of inserted before the attempt and updated
	// after it (a status change rewrites every index entry of the row, so
	// the pair cost Postgres about twice the single write).
	//
	// With AttemptNo 0 the record holds no attempt: it only creates the
	// notification, pending and due at NextAttemptAt (a delivery deferred
	// before its first attempt).
	Create *NewNotification
	// HealthOf is the receiver whose health the attempt counts for (its
	// failing_since and last_success_at, see lifecycle.go); uuid.Nil for
	// an attempt that says nothing about it (the receiver's own
	// operational events, sent to another URL).
	HealthOf uuid.UUID
}

// RecordAttempts writes a batch of attempts and updates their notifications
// (or creates them, see AttemptRecord.Create) in one statement. It is
// idempotent: an attempt already on record (same notification and number) is
// skipped together with its update, so a batch can be retried safely after
// an error whose outcome is unknown.
//
// Status rules: an automatic attempt moves a pending notification to its
// NewStatus; a successful manual redelivery moves a pending or failed one to
// delivered; a cancelled or delivered notification keeps its status. The
// attempts counter only ever grows, and counts automatic attempts.
//
// The caller must not put two attempts of one notification in one batch.
func (s *Store) RecordAttempts(ctx context.Context, batch []AttemptRecord) error {
	for try := 0; len(batch) > 0; try++ {
		retry, err := s.recordAttempts(ctx, batch)
		if err != nil {
			return fmt.Errorf("record %d attempts: %w", len(batch), err)
		}
		if len(retry) > 0 && try == 2 {
			return fmt.Errorf("record %d attempts: notification %s neither created nor visible", len(batch), retry[0].NotificationID)
		}
		batch = retry
	}
	return nil
}

// recordAttempts runs the statement once. It returns the records to run
// again: those whose notification was to be created but already existed
// without being visible to the statement (its insert committed after the
// statement began, e.g. the same business key sent through the HTTP ingest
// at that moment), so that neither the attempt nor the update could be
// applied. A new statement sees the row.
func (s *Store) recordAttempts(ctx context.Context, batch []AttemptRecord) ([]AttemptRecord, error) {
	rows, err := s.pool.Query(ctx, recordAttemptsSQL, attemptColumns(batch)...)
	if err != nil {
		return nil, err
	}
	again, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(again) == 0 {
		return nil, err
	}
	var retry []AttemptRecord
	for _, r := range batch {
		if slices.Contains(again, r.NotificationID) {
			retry = append(retry, r)
		}
	}
	return retry, nil
}

// recordAttemptsSQL is RecordAttempts' statement over the columns of
// attemptColumns. created: notifications written in their state after the
// attempt. ins: the attempts, for notifications created here or visible,
// each in its notification's partition (keyed). The UPDATE applies each inserted
// attempt to a notification that existed. The SELECT names the records to
// run again (see recordAttempts): to be created, yet neither created nor on
// record.
const recordAttemptsSQL = `
		WITH u AS (
			SELECT * FROM unnest($1::uuid[], $2::int2[], $3::timestamptz[], $4::int4[], $5::int2[],
				$6::text[]::attempt_outcome[], $7::text[], $8::text[], $9::text[]::notification_status[], $10::timestamptz[],
				$11::bool[], $12::uuid[], $13::text[], $14::text[], $15::text[], $16::bytea[], $17::int2[], $18::uuid[])
				AS u(id, no, started, ms, code, outcome, err, body, status, next,
					create_it, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts, health_of)
		), created AS (
			INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts,
				created_at, status, attempts, next_attempt_at, delivered_at, last_attempt_at, last_status_code, last_error)
			SELECT id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts,
				now(), status, greatest(no, 0), CASE WHEN status = 'pending' THEN next END,
				CASE WHEN status = 'delivered' THEN started + make_interval(secs => ms / 1000.0) END,
				CASE WHEN no <> 0 THEN started END, code, err
			FROM u WHERE create_it
			ON CONFLICT DO NOTHING
			RETURNING id, created_at
		), keyed AS (
			-- Each record's notification with its partition key: created
			-- here (the key table's new rows are not visible to this
			-- statement), or on record before it. None: not on record.
			-- The key is a sub-select, one probe of its primary key per
			-- record not created here (coalesce skips it for those): a join
			-- was planned as a sequential scan of the key table.
			SELECT u.*, coalesce(c.created_at, (SELECT k.created_at FROM notification_keys k WHERE k.id = u.id)) AS created_at
			FROM u LEFT JOIN created c ON c.id = u.id
		), ins AS (
			INSERT INTO delivery_attempts (notification_id, attempt_no, started_at, duration_ms, status_code, outcome, error, response_body,
				notification_created_at)
			SELECT id, no, started, ms, code, outcome, err, body, created_at FROM keyed
			WHERE no <> 0 AND created_at IS NOT NULL
			ON CONFLICT DO NOTHING
			RETURNING notification_id, attempt_no, notification_created_at
		), upd AS (
			UPDATE notifications n SET
				attempts = CASE WHEN u.no > 0 THEN greatest(n.attempts, u.no) ELSE n.attempts END,
				status = ` + newStatus + `,
				next_attempt_at = CASE WHEN ` + newStatus + ` <> 'pending' THEN NULL
					WHEN u.no > 0 THEN u.next ELSE n.next_attempt_at END,
				delivered_at = CASE WHEN n.delivered_at IS NULL AND ` + newStatus + ` = 'delivered'
					THEN u.started + make_interval(secs => u.ms / 1000.0) ELSE n.delivered_at END,
				last_attempt_at = greatest(n.last_attempt_at, u.started),
				last_status_code = CASE WHEN n.last_attempt_at > u.started THEN n.last_status_code ELSE u.code END,
				last_error = CASE WHEN n.last_attempt_at > u.started THEN n.last_error ELSE u.err END
			FROM u
			JOIN ins ON ins.notification_id = u.id AND ins.attempt_no = u.no
			WHERE n.id = u.id AND n.created_at = ins.notification_created_at
				AND NOT EXISTS (SELECT FROM created c WHERE c.id = u.id)
		)` + healthSQL + `
		SELECT id FROM keyed WHERE create_it AND created_at IS NULL`

// healthSQL continues recordAttemptsSQL: it keeps each receiver's run of
// failures (failing_since: the first failed attempt since the last success)
// and last_success_at from the attempts the statement inserted, so a
// retried batch counts nothing twice. A receiver row is written only when
// failing_since changes or last_success_at is a minute old: on a healthy
// receiver most batches write none. Attempts may be recorded out of order
// across workers, so a success clears only a run that began before it.
const healthSQL = `, seen AS (
			SELECT u.health_of AS rid, u.started, u.outcome = 'success' AS ok,
				max(u.started) FILTER (WHERE u.outcome = 'success') OVER (PARTITION BY u.health_of) AS last_ok
			FROM u JOIN ins ON ins.notification_id = u.id AND ins.attempt_no = u.no
			WHERE u.health_of IS NOT NULL
		), health AS (
			SELECT rid, last_ok, min(started) FILTER (WHERE NOT ok AND (last_ok IS NULL OR started > last_ok)) AS first_fail
			FROM seen GROUP BY rid, last_ok
		), health_next AS (
			SELECT h.rid, h.last_ok, CASE
				WHEN h.last_ok IS NULL THEN coalesce(r.failing_since, h.first_fail)
				WHEN r.failing_since > h.last_ok THEN r.failing_since
				ELSE h.first_fail END AS failing_since
			FROM health h JOIN receivers r ON r.id = h.rid
		), health_upd AS (
			UPDATE receivers r SET failing_since = hn.failing_since,
				last_success_at = CASE WHEN hn.last_ok IS NULL THEN r.last_success_at
					ELSE greatest(r.last_success_at, hn.last_ok) END
			FROM health_next hn
			WHERE r.id = hn.rid AND (hn.failing_since IS DISTINCT FROM r.failing_since
				OR (hn.last_ok IS NOT NULL AND (r.last_success_at IS NULL OR r.last_success_at < hn.last_ok - interval '1 minute')))
		)`

// attemptColumns spreads a batch into the column arrays recordAttemptsSQL
// unnests, in its parameters' order.
func attemptColumns(batch []AttemptRecord) []any {
	n := len(batch)
	ids := make([][16]byte, n)
	nos := make([]int16, n)
	started := make([]time.Time, n)
	durations := make([]int32, n)
	codes := make([]*int16, n)
	outcomes := make([]*string, n)
	errs := make([]*string, n)
	bodies := make([]*string, n)
	statuses := make([]*string, n)
	nexts := make([]*time.Time, n)
	// The notification's own columns, for records that create it.
	creates := make([]bool, n)
	receivers := make([][16]byte, n)
	types := make([]string, n)
	keys := make([]string, n)
	urls := make([]*string, n)
	payloads := make([][]byte, n)
	maxAttempts := make([]int16, n)
	healthOf := make([]pgtype.UUID, n)
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
		outcomes[i] = nullIfEmpty(r.Outcome)
		errs[i] = nullIfEmpty(r.Error)
		bodies[i] = nullIfEmpty(r.ResponseBody)
		statuses[i] = nullIfEmpty(r.NewStatus)
		if r.NewStatus == StatusPending {
			nexts[i] = &r.NextAttemptAt
		}
		healthOf[i] = pgtype.UUID{Bytes: r.HealthOf, Valid: r.HealthOf != uuid.Nil}
		if c := r.Create; c != nil {
			creates[i] = true
			receivers[i], types[i], keys[i] = c.ReceiverID, c.EventType, c.IdempotencyKey
			urls[i], payloads[i], maxAttempts[i] = nullIfEmpty(c.CallbackURL), c.Payload, int16(c.MaxAttempts)
		}
	}
	return []any{ids, nos, started, durations, codes, outcomes, errs, bodies, statuses, nexts,
		creates, receivers, types, keys, urls, payloads, maxAttempts, healthOf}
}
