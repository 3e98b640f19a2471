package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Receiver health states (receivers.status).
const (
	ReceiverActive   = "active"
	ReceiverFailing  = "failing"
	ReceiverDisabled = "disabled"
)

// DisabledError is the last_error of a notification failed because its
// receiver is disabled.
const DisabledError = "receiver_disabled"

// Operational event types, one per transition.
const (
	EventFailing   = "receiver.failing"
	EventDisabled  = "receiver.disabled"
	EventRecovered = "receiver.recovered"
	EventEnabled   = "receiver.enabled"
)

// Transition is one receiver changing health state.
type Transition struct {
	Event    string    // EventFailing, …
	From     string    // the status before
	Receiver *Receiver // as stored after the change
	At       time.Time
}

// EventMaker returns the notifications that announce t, to be recorded in
// the transaction that makes it. operator is the operator receiver (nil when
// there is none, or it is deactivated).
type EventMaker func(t Transition, operator *Receiver) []NewNotification

// Thresholds of the lifecycle job; zero turns a rule off.
type Thresholds struct {
	FailingAfter time.Duration
	DisableAfter time.Duration
}

// lifecycleRules are the job's transitions, in the order a run applies
// them. $1 is the run's time, $2 the rule's threshold in seconds, $3 the
// threshold as text for the reason. A receiver whose run of failures ended
// after it was marked failing (failing_since cleared, or a newer run begun)
// has recovered. The operator receiver is never disabled: it is how the
// operator hears about the others.
var lifecycleRules = []struct {
	event, from, set, where string
	threshold               func(Thresholds) time.Duration
}{
	{EventRecovered, ReceiverFailing, `status = 'active'`,
		`status = 'failing' AND (failing_since IS NULL OR failing_since > status_changed_at)`,
		func(Thresholds) time.Duration { return -1 }}, // always on
	{EventFailing, ReceiverActive, `status = 'failing'`,
		`status = 'active' AND failing_since <= $1::timestamptz - make_interval(secs => $2::float8)`,
		func(t Thresholds) time.Duration { return t.FailingAfter }},
	{EventDisabled, "", `status = 'disabled', disabled_at = $1::timestamptz,
		disabled_reason = 'every delivery attempt failed for ' || $3::text || ' (since ' ||
			to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ')'`,
		`status <> 'disabled' AND NOT operator AND failing_since <= $1::timestamptz - make_interval(secs => $2::float8)`,
		func(t Thresholds) time.Duration { return t.DisableAfter }},
}

// ApplyLifecycle moves receivers between health states as of now (the
// database clock) and records, in the same transaction, the events mk
// makes for each move, so a crash loses neither. It returns the moves and
// the event notifications to queue (pending, due now; the re-drive job
// queues them if the caller cannot).
func (s *Store) ApplyLifecycle(ctx context.Context, now time.Time, th Thresholds, mk EventMaker) ([]Transition, []*Notification, error) {
	var moves []Transition
	var events []*Notification
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		operator, err := s.operator(ctx, tx)
		if err != nil {
			return err
		}
		for _, rule := range lifecycleRules {
			d := rule.threshold(th)
			if d == 0 {
				continue
			}
			changed, err := s.transition(ctx, tx, rule.set, rule.where, now, d)
			if err != nil {
				return fmt.Errorf("%s: %w", rule.event, err)
			}
			for _, c := range changed {
				t := Transition{Event: rule.event, From: rule.from, Receiver: c.r, At: now}
				if t.From == "" {
					t.From = c.from
				}
				moves = append(moves, t)
				ns, err := insertEvents(ctx, tx, mk(t, operator))
				if err != nil {
					return err
				}
				events = append(events, ns...)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("receiver lifecycle: %w", err)
	}
	return moves, events, nil
}

type changedReceiver struct {
	r    *Receiver
	from string
}

// transition applies one rule and returns the receivers it changed, each
// with its status before.
func (s *Store) transition(ctx context.Context, tx pgx.Tx, set, where string, now time.Time, d time.Duration) ([]changedReceiver, error) {
	// Postgres refuses parameters a statement does not use.
	args := []any{now}
	if strings.Contains(set+where, "$2") {
		args = append(args, d.Seconds())
	}
	if strings.Contains(set+where, "$3") {
		args = append(args, d.String())
	}
	rows, err := tx.Query(ctx, `
		WITH before AS (SELECT id AS before_id, status AS before_status FROM receivers WHERE `+where+` FOR UPDATE)
		UPDATE receivers SET `+set+`, status_changed_at = $1
		FROM before WHERE id = before_id
		RETURNING before_status, `+receiverColumns, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []changedReceiver
	for rows.Next() {
		var from string
		r, err := s.scanReceiver(prefixedRow{rows, &from})
		if err != nil {
			return nil, err
		}
		out = append(out, changedReceiver{r: r, from: from})
	}
	return out, rows.Err()
}

// prefixedRow scans a leading extra column into first, then the rest as
// the receiver columns.
type prefixedRow struct {
	pgx.Row
	first *string
}

func (p prefixedRow) Scan(dest ...any) error { return p.Row.Scan(append([]any{p.first}, dest...)...) }

// operator returns the active operator receiver, or nil.
func (s *Store) operator(ctx context.Context, q pgx.Tx) (*Receiver, error) {
	r, err := s.scanReceiver(q.QueryRow(ctx, `SELECT `+receiverColumns+` FROM receivers WHERE operator AND active`))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("operator receiver: %w", err)
	}
	return r, nil
}

// insertEvents records event notifications pending and due now. Their ids
// come from the transition, so running a transaction again adds nothing.
func insertEvents(ctx context.Context, tx pgx.Tx, ns []NewNotification) ([]*Notification, error) {
	var out []*Notification
	for _, n := range ns {
		got, err := scanNotification(tx.QueryRow(ctx, insertNotificationSQL,
			pgID(n.ID), pgID(n.ReceiverID), n.EventType, n.IdempotencyKey, nullIfEmpty(n.CallbackURL), n.Payload,
			n.MaxAttempts, nil))
		if errors.Is(err, ErrNotFound) {
			continue // on record already
		}
		if err != nil {
			return nil, fmt.Errorf("record event %s for %s: %w", n.EventType, n.ReceiverID, err)
		}
		out = append(out, got)
	}
	return out, nil
}

// EnableReceiver takes a disabled receiver back: it is attempted again and
// accepts notifications as before, in the failing state until a delivery
// succeeds (then the lifecycle job announces receiver.recovered); the
// auto-disable clock starts again now. The event mk makes is recorded in
// the same transaction. A receiver that is not disabled is returned as it
// is, with enabled false and no event.
func (s *Store) EnableReceiver(ctx context.Context, id uuid.UUID, mk EventMaker) (r *Receiver, enabled bool, events []*Notification, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		r, err = s.scanReceiver(tx.QueryRow(ctx, `
			UPDATE receivers SET status = 'failing', status_changed_at = now(), failing_since = now(),
				disabled_reason = NULL, disabled_at = NULL
			WHERE id = $1 AND status = 'disabled'
			RETURNING `+receiverColumns, id))
		if errors.Is(err, ErrNotFound) {
			r, err = s.scanReceiver(tx.QueryRow(ctx, `SELECT `+receiverColumns+` FROM receivers WHERE id = $1`, id))
			return err
		}
		if err != nil {
			return err
		}
		enabled = true
		operator, err := s.operator(ctx, tx)
		if err != nil {
			return err
		}
		events, err = insertEvents(ctx, tx, mk(Transition{Event: EventEnabled, From: ReceiverDisabled, Receiver: r, At: *r.StatusChangedAt}, operator))
		return err
	})
	if err != nil {
		return nil, false, nil, fmt.Errorf("enable receiver %s: %w", id, err)
	}
	return r, enabled, events, nil
}

// FailPendingOfDisabled fails up to limit pending notifications of a
// disabled receiver with last error DisabledError and returns how many;
// call it until it returns 0. The receiver's own events (event type
// receiver.* to its status_callback_url) are left to be delivered. Rows a
// worker is recording are skipped: the worker's own check fails them.
func (s *Store) FailPendingOfDisabled(ctx context.Context, receiverID uuid.UUID, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		WITH v AS (
			SELECT n.id, n.created_at FROM notifications n JOIN receivers r ON r.id = n.receiver_id
			WHERE n.receiver_id = $1 AND n.status = 'pending' AND r.status = 'disabled'
				AND NOT (n.event_type LIKE 'receiver.%' AND coalesce(n.callback_url = r.status_callback_url, false))
			LIMIT $2
			FOR UPDATE OF n SKIP LOCKED
		)
		UPDATE notifications SET status = 'failed', next_attempt_at = NULL, last_error = $3
		WHERE (id, created_at) IN (SELECT id, created_at FROM v)`, pgID(receiverID), limit, DisabledError)
	if err != nil {
		return 0, fmt.Errorf("fail pending notifications of disabled receiver %s: %w", receiverID, err)
	}
	return tag.RowsAffected(), nil
}

// FailIfDisabled is the worker's check before an attempt: if n's receiver
// is disabled, n ends failed with DisabledError (recorded as such when it
// is not on record yet and create is set; changed: this call ended it) and
// disabled is true. A
// receiver enabled meanwhile gives false: attempt it.
func (s *Store) FailIfDisabled(ctx context.Context, n NewNotification, create bool) (disabled, changed bool, err error) {
	err = s.pool.QueryRow(ctx, `
		WITH r AS (SELECT 1 FROM receivers WHERE id = $2 AND status = 'disabled'),
		upd AS (
			UPDATE notifications SET status = 'failed', next_attempt_at = NULL, last_error = $9
			WHERE id = $1 AND created_at = `+createdAtOf("$1")+` AND status = 'pending' AND EXISTS (SELECT FROM r)
			RETURNING id
		), ins AS (
			INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts,
				created_at, status, last_error)
			SELECT $1, $2, $3, $4, $5, $6, $7, now(), 'failed', $9 WHERE $8 AND EXISTS (SELECT FROM r)
			ON CONFLICT DO NOTHING
			RETURNING id
		)
		SELECT EXISTS (SELECT FROM r), EXISTS (SELECT FROM upd) OR EXISTS (SELECT FROM ins)`,
		pgID(n.ID), pgID(n.ReceiverID), n.EventType, n.IdempotencyKey, nullIfEmpty(n.CallbackURL), n.Payload,
		n.MaxAttempts, create, DisabledError).Scan(&disabled, &changed)
	if err != nil {
		return false, false, fmt.Errorf("check disabled receiver for %s: %w", n.ID, err)
	}
	return disabled, changed, nil
}

// SetOperatorReceiver makes the operator receiver deliver to url, creating
// it from fresh (ID, Name, SigningSecret) when there is none yet; url ""
// deactivates it, so no event is made for it. Every scheduler replica calls
// it at start; two creating at once is settled by the unique index.
func (s *Store) SetOperatorReceiver(ctx context.Context, url string, fresh *Receiver) (r *Receiver, created bool, err error) {
	if url == "" {
		_, err := s.pool.Exec(ctx, `UPDATE receivers SET active = false, updated_at = now() WHERE operator AND active`)
		if err != nil {
			return nil, false, fmt.Errorf("deactivate operator receiver: %w", err)
		}
		return nil, false, nil
	}
	for try := 0; try < 2; try++ {
		r, err = s.scanReceiver(s.pool.QueryRow(ctx, `
			UPDATE receivers SET callback_url = $1, active = true,
				updated_at = CASE WHEN callback_url = $1 AND active THEN updated_at ELSE now() END
			WHERE operator
			RETURNING `+receiverColumns, url))
		if !errors.Is(err, ErrNotFound) {
			break
		}
		fresh.CallbackURL, fresh.Operator = url, true
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return s.insertReceiver(ctx, tx, fresh) })
		if err == nil {
			return fresh, true, nil
		}
		if !isUniqueViolation(err) {
			break
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("operator receiver: %w", err)
	}
	return r, false, nil
}

// OperatorReceiver returns the operator receiver (ErrNotFound: none).
func (s *Store) OperatorReceiver(ctx context.Context) (*Receiver, error) {
	r, err := s.scanReceiver(s.pool.QueryRow(ctx, `SELECT `+receiverColumns+` FROM receivers WHERE operator`))
	if err != nil {
		return nil, fmt.Errorf("operator receiver: %w", err)
	}
	return r, nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
