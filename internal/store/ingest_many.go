package store

// The HTTP ingest's Postgres work for many notifications at once: what
// concurrent requests share is one statement per step instead of one per
// request (a round trip each was most of the API's CPU, in syscalls).

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/notifyd/notifyd/internal/retry"
)

// IngestReceiver is what accepting a notification needs to know about its
// receiver: whether it takes notifications, where overrides may point, and
// its retry policy (for max_attempts). Secrets are not read.
type IngestReceiver struct {
	ID            uuid.UUID
	Active        bool
	Status        string // ReceiverActive, ReceiverFailing or ReceiverDisabled
	CallbackHosts []string
	Retry         *retry.Policy
}

// IngestReceivers returns the receivers among ids that exist, by id, in one
// statement.
func (s *Store) IngestReceivers(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*IngestReceiver, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, active, status, callback_hosts, retry_policy FROM receivers WHERE id = ANY($1)`, pgIDs(ids))
	if err != nil {
		return nil, fmt.Errorf("ingest receivers: %w", err)
	}
	out := make(map[uuid.UUID]*IngestReceiver, len(ids))
	var r IngestReceiver
	var policy []byte
	_, err = pgx.ForEachRow(rows, []any{scanID(&r.ID), &r.Active, &r.Status, &r.CallbackHosts, &policy}, func() error {
		got := r
		if len(policy) > 0 {
			got.Retry = new(retry.Policy)
			if err := json.Unmarshal(policy, got.Retry); err != nil {
				return fmt.Errorf("receiver %s: stored retry policy: %w", r.ID, err)
			}
		}
		out[r.ID] = &got
		r.CallbackHosts, policy = nil, nil // ForEachRow reuses the targets
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ingest receivers: %w", err)
	}
	return out, nil
}

// Inserted is one notification of InsertNotifications: the stored row, and
// whether this call created it (false: it existed, as InsertNotification's
// created=false).
type Inserted struct {
	Notification *Notification
	Created      bool
}

// InsertNotifications is InsertNotification for many notifications, in one
// INSERT (and one SELECT for those that existed already); out[i] is ns[i]'s.
// An id given twice is created once: the later ones get created=false. If
// a receiver does not exist the statement fails as a whole; the
// notifications are then inserted one by one, so that only the
// notifications of that receiver fail (ErrUnknownReceiver in errs[i]).
func (s *Store) InsertNotifications(ctx context.Context, ns []NewNotification) (out []Inserted, errs []error, err error) {
	out, errs = make([]Inserted, len(ns)), make([]error, len(ns))
	first := make(map[uuid.UUID]int, len(ns))
	var a insertArrays
	for i := range ns {
		if _, dup := first[ns[i].ID]; !dup {
			first[ns[i].ID] = i
			a.add(&ns[i])
		}
	}
	created, err := s.insertMany(ctx, &a)
	if isForeignKeyViolation(err) {
		for i := range ns {
			n, c, err := s.InsertNotification(ctx, ns[i])
			out[i], errs[i] = Inserted{n, c}, err
		}
		return out, errs, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var existing []uuid.UUID
	for id := range first {
		if created[id] == nil {
			existing = append(existing, id)
		}
	}
	found, err := s.notificationsByID(ctx, existing)
	if err != nil {
		return nil, nil, err
	}
	for i := range ns {
		id := ns[i].ID
		switch n := created[id]; {
		case n != nil && first[id] == i:
			out[i] = Inserted{n, true}
		case n != nil:
			out[i] = Inserted{n, false}
		case found[id] != nil:
			out[i] = Inserted{found[id], false}
		default: // existed at the INSERT, gone by the SELECT (retention)
			errs[i] = fmt.Errorf("insert notification %s: it existed and was deleted meanwhile: %w", id, ErrNotFound)
		}
	}
	return out, errs, nil
}

// insertArrays are InsertNotifications' rows as column arrays (unnest).
type insertArrays struct {
	ids, receivers        []pgtype.UUID
	types, keys           []string
	callbackURLs, failure []*string
	payloads              [][]byte
	maxAttempts           []int16
}

func (a *insertArrays) add(n *NewNotification) {
	a.ids, a.receivers = append(a.ids, pgID(n.ID)), append(a.receivers, pgID(n.ReceiverID))
	a.types, a.keys = append(a.types, n.EventType), append(a.keys, n.IdempotencyKey)
	a.callbackURLs, a.failure = append(a.callbackURLs, nullIfEmpty(n.CallbackURL)), append(a.failure, nullIfEmpty(n.FailedWith))
	a.payloads, a.maxAttempts = append(a.payloads, n.Payload), append(a.maxAttempts, int16(n.MaxAttempts))
}

// insertManySQL is insertNotificationSQL over arrays.
const insertManySQL = `
	INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts,
		created_at, next_attempt_at, status, last_error)
	SELECT u.id, u.receiver_id, u.event_type, u.idempotency_key, u.callback_url, u.payload, u.max_attempts,
		now(), CASE WHEN u.failed_with IS NULL THEN now() END,
		CASE WHEN u.failed_with IS NULL THEN 'pending' ELSE 'failed' END::notification_status, u.failed_with
	FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::int2[], $8::text[])
		AS u(id, receiver_id, event_type, idempotency_key, callback_url, payload, max_attempts, failed_with)
	ON CONFLICT DO NOTHING
	RETURNING ` + notificationColumns

// insertMany runs insertManySQL and returns the rows it created, by id.
func (s *Store) insertMany(ctx context.Context, a *insertArrays) (map[uuid.UUID]*Notification, error) {
	rows, err := s.pool.Query(ctx, insertManySQL, a.ids, a.receivers, a.types, a.keys, a.callbackURLs, a.payloads, a.maxAttempts, a.failure)
	if err != nil {
		return nil, fmt.Errorf("insert %d notifications: %w", len(a.ids), err)
	}
	created, err := notificationsOf(rows, len(a.ids))
	if err != nil {
		return nil, fmt.Errorf("insert %d notifications: %w", len(a.ids), err)
	}
	return created, nil
}

// notificationsByID reads the notifications among ids, by id.
func (s *Store) notificationsByID(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]*Notification, error) {
	out := make(map[uuid.UUID]*Notification, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+notificationColumns+` FROM notifications WHERE id = ANY($1)`, pgIDs(ids))
	if err == nil {
		out, err = notificationsOf(rows, len(ids))
	}
	if err != nil {
		return nil, fmt.Errorf("get %d notifications: %w", len(ids), err)
	}
	return out, nil
}

// notificationsOf reads rows of notificationColumns, by id, and closes rows.
func notificationsOf(rows pgx.Rows, expect int) (map[uuid.UUID]*Notification, error) {
	defer rows.Close()
	out := make(map[uuid.UUID]*Notification, expect)
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, err
		}
		out[n.ID] = n
	}
	return out, rows.Err()
}
