package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Notification statuses. A notification is always in exactly one of them;
// all but StatusPending are terminal. query/client repeats these and the
// outcomes below for its users (it cannot import this package); a test
// there keeps them equal.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Attempt outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeGone    = "gone"    // 410: the receiver asked us to stop
	OutcomeTimeout = "timeout" // no full answer within the timeout
	OutcomeBlocked = "blocked" // the callback address is not allowed
	OutcomeOffered = "offered" // pull receivers: offered on the stream, not yet acknowledged
)

// Notification as stored.
type Notification struct {
	ID             uuid.UUID       `json:"id"`
	ReceiverID     uuid.UUID       `json:"receiver_id"`
	EventType      string          `json:"event_type"`
	IdempotencyKey string          `json:"idempotency_key"`
	CallbackURL    *string         `json:"callback_url,omitempty"`
	Payload        json.RawMessage `json:"payload"`
	Status         string          `json:"status"`
	Attempts       int             `json:"attempts"`
	MaxAttempts    int             `json:"max_attempts"`
	CreatedAt      time.Time       `json:"created_at"`
	NextAttemptAt  *time.Time      `json:"next_attempt_at,omitempty"`
	LastAttemptAt  *time.Time      `json:"last_attempt_at,omitempty"`
	DeliveredAt    *time.Time      `json:"delivered_at,omitempty"`
	LastStatusCode *int            `json:"last_status_code,omitempty"`
	LastError      *string         `json:"last_error,omitempty"`
}

// NewNotification is what a producer hands in.
type NewNotification struct {
	ID             uuid.UUID
	ReceiverID     uuid.UUID
	EventType      string
	IdempotencyKey string
	CallbackURL    string // "" for the receiver's default
	Payload        []byte
	MaxAttempts    int
	// FailedWith, when set, records the notification failed at once with
	// this last error (its receiver is disabled: see InsertNotification).
	FailedWith string
}

const notificationColumns = `id, receiver_id, event_type, idempotency_key, callback_url, payload, status,
	attempts, max_attempts, created_at, next_attempt_at, last_attempt_at, delivered_at, last_status_code, last_error`

// pgID passes a uuid.UUID as a parameter the way pgx encodes without a
// detour: uuid.UUID is a driver.Valuer, and pgx encodes a Valuer's string by
// first failing to encode it as binary (building an error), then parsing
// it. That detour was several percent of the query API's CPU.
func pgID(id uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

// scanID is pgID's counterpart for scanning: a *[16]byte is read straight
// from the binary value, where *uuid.UUID (an sql.Scanner) goes through text.
func scanID(id *uuid.UUID) *[16]byte { return (*[16]byte)(id) }

func scanNotification(row pgx.Row) (*Notification, error) {
	var n Notification
	var payload []byte
	var code *int16
	err := row.Scan(scanID(&n.ID), scanID(&n.ReceiverID), &n.EventType, &n.IdempotencyKey, &n.CallbackURL, &payload, &n.Status,
		&n.Attempts, &n.MaxAttempts, &n.CreatedAt, &n.NextAttemptAt, &n.LastAttemptAt, &n.DeliveredAt, &code, &n.LastError)
	if err != nil {
		return nil, notFound(err)
	}
	n.Payload = payload
	if code != nil {
		c := int(*code)
		n.LastStatusCode = &c
	}
	return &n, nil
}

func nullIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// NewNotification's creation time is the database's now() at insert, not
// the producer's clock: receivers page through notifications by created_at,
// and rows must appear in roughly the order of that column for a keyset
// cursor to catch them (a Go-client notification reaches Postgres only when
// a worker records its first attempt, or defers it; see RecordAttempts).

// InsertNotification records n as pending and due now (or, with
// n.FailedWith set, failed at once with that last error), unless a
// notification with the same (receiver, idempotency key) exists: then it
// returns that one and created=false. Unknown receivers give
// ErrUnknownReceiver.
func (s *Store) InsertNotification(ctx context.Context, n NewNotification) (_ *Notification, created bool, err error) {
	got, err := scanNotification(s.pool.QueryRow(ctx, insertNotificationSQL,
		pgID(n.ID), pgID(n.ReceiverID), n.EventType, n.IdempotencyKey, nullIfEmpty(n.CallbackURL), n.Payload, n.MaxAttempts,
		nullIfEmpty(n.FailedWith)))
	switch {
	case err == nil:
		return got, true, nil
	case errors.Is(err, ErrNotFound):
		// Conflict: the notification exists already.
		got, err = s.GetNotification(ctx, n.ID)
		return got, false, err
	case isForeignKeyViolation(err):
		return nil, false, fmt.Errorf("insert notification %s: %w", n.ID, ErrUnknownReceiver)
	}
	return nil, false, fmt.Errorf("insert notification %s: %w", n.ID, err)
}

// insertNotificationSQL inserts a notification unless its id exists; $8,
// when not NULL, records it failed at once with that last error.
const insertNotificationSQL = `
		INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts,
			created_at, next_attempt_at, status, last_error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now(), CASE WHEN $8::text IS NULL THEN now() END,
			CASE WHEN $8::text IS NULL THEN 'pending' ELSE 'failed' END::notification_status, $8::text)
		ON CONFLICT DO NOTHING
		RETURNING ` + notificationColumns

func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
}

var getNotificationSQL = `SELECT ` + notificationColumns + ` FROM notifications WHERE id = $1 AND created_at = ` + createdAtOf("$1")

// GetNotification returns ErrNotFound for an unknown id.
func (s *Store) GetNotification(ctx context.Context, id uuid.UUID) (*Notification, error) {
	n, err := scanNotification(s.pool.QueryRow(ctx, getNotificationSQL, pgID(id)))
	if err != nil {
		return nil, fmt.Errorf("get notification %s: %w", id, err)
	}
	return n, nil
}

// Attempt is one HTTP request to a receiver. Manual redeliveries have
// negative numbers (−1, −2, …) so they never collide with the automatic
// schedule's 1..N.
type Attempt struct {
	NotificationID uuid.UUID     `json:"-"`
	AttemptNo      int           `json:"attempt"`
	StartedAt      time.Time     `json:"started_at"`
	Duration       time.Duration `json:"-"`
	StatusCode     int           `json:"status_code,omitempty"` // 0: no HTTP answer
	Outcome        string        `json:"outcome"`
	Error          string        `json:"error,omitempty"`
	ResponseBody   string        `json:"response_body,omitempty"`
}

// Manual reports whether the attempt was a redelivery someone asked for.
func (a *Attempt) Manual() bool { return a.AttemptNo < 0 }

const attemptsQuery = `
		SELECT attempt_no, started_at, duration_ms, coalesce(status_code, 0), outcome, coalesce(error, ''), coalesce(response_body, '')
		FROM delivery_attempts WHERE notification_id = $1 AND notification_created_at = ` + "(SELECT created_at FROM notification_keys WHERE id = $1)" + `
		ORDER BY started_at, attempt_no`

// ListAttempts returns a notification's attempts in the order they were made.
func (s *Store) ListAttempts(ctx context.Context, id uuid.UUID) ([]Attempt, error) {
	rows, err := s.pool.Query(ctx, attemptsQuery, pgID(id))
	if err != nil {
		return nil, fmt.Errorf("list attempts %s: %w", id, err)
	}
	return scanAttempts(rows, id)
}

func scanAttempts(rows pgx.Rows, id uuid.UUID) ([]Attempt, error) {
	attempts := []Attempt{}
	var a Attempt
	var no, code int16
	var ms int32
	_, err := pgx.ForEachRow(rows, []any{&no, &a.StartedAt, &ms, &code, &a.Outcome, &a.Error, &a.ResponseBody}, func() error {
		a.NotificationID, a.AttemptNo, a.StatusCode, a.Duration = id, int(no), int(code), time.Duration(ms)*time.Millisecond
		attempts = append(attempts, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list attempts %s: %w", id, err)
	}
	return attempts, nil
}
