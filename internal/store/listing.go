package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/tasks"
)

// MaxListLimit is the largest page a listing returns.
const MaxListLimit = 500

// Position is a row's place in a listing ordered by (created_at, id): the
// keyset a cursor carries. Postgres keeps created_at in microseconds, so a
// Position built from a row compares exactly equal to it.
type Position struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// ListFilter selects and orders notifications. Zero fields do not filter.
type ListFilter struct {
	// ReceiverID limits the listing to one receiver; nil lists every
	// receiver's notifications (admin).
	ReceiverID *uuid.UUID
	// Statuses keeps notifications in any of these statuses.
	Statuses       []string
	EventType      string
	IdempotencyKey string
	// CreatedAfter is inclusive, CreatedBefore exclusive.
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
	// Descending lists newest first; the default is oldest first.
	Descending bool
	// After continues a listing: only rows strictly beyond this position in
	// the listing's order are returned.
	After *Position
	// Limit is the page size, 1..MaxListLimit.
	Limit int
}

// ListNotifications returns one page of notifications matching f, and
// whether more rows follow it.
//
// Paging is a keyset on (created_at, id), so it neither skips nor repeats
// rows while new ones arrive: a new row gets the database's now() as
// created_at and so sorts after every row already listed in ascending order.
// (A row whose inserting transaction is still open when a page is read
// becomes visible a moment later with a created_at just before rows already
// listed; inserts are single statements, so that window is the length of one
// INSERT and its commit.)
func (s *Store) ListNotifications(ctx context.Context, f ListFilter) ([]*Notification, bool, error) {
	if f.Limit < 1 || f.Limit > MaxListLimit {
		return nil, false, fmt.Errorf("list notifications: limit %d out of range 1..%d", f.Limit, MaxListLimit)
	}
	query, args := listQuery(f)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list notifications: %w", err)
	}
	out, err := scanNotifications(rows)
	if err != nil {
		return nil, false, fmt.Errorf("list notifications: %w", err)
	}
	more := len(out) > f.Limit
	if more {
		out = out[:f.Limit]
	}
	return out, more, nil
}

// listQuery builds the statement for f. It fetches Limit+1 rows so the
// caller learns whether another page follows without a COUNT.
//
// The shapes it produces are what the indexes of migration 00002 are for;
// listing_explain_test.go checks every shape against a million rows.
func listQuery(f ListFilter) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.ReceiverID != nil {
		where = append(where, "receiver_id = "+arg(pgID(*f.ReceiverID)))
	}
	switch len(f.Statuses) {
	case 0:
	case 1:
		// A plain equality plans better than = ANY of one element.
		where = append(where, "status = "+arg(f.Statuses[0])+"::notification_status")
	default:
		where = append(where, "status = ANY ("+arg(f.Statuses)+"::text[]::notification_status[])")
	}
	if f.EventType != "" {
		where = append(where, "event_type = "+arg(f.EventType))
	}
	if f.IdempotencyKey != "" {
		if f.ReceiverID != nil {
			// The id is derived from (receiver, key): the primary key finds it.
			where = append(where, "id = "+arg(pgID(tasks.NotificationID(*f.ReceiverID, f.IdempotencyKey))))
		}
		where = append(where, "idempotency_key = "+arg(f.IdempotencyKey))
	}
	if f.CreatedAfter != nil {
		where = append(where, "created_at >= "+arg(*f.CreatedAfter))
	}
	if f.CreatedBefore != nil {
		where = append(where, "created_at < "+arg(*f.CreatedBefore))
	}
	cmp, dir := ">", "ASC"
	if f.Descending {
		cmp, dir = "<", "DESC"
	}
	if f.After != nil {
		t, id := arg(f.After.CreatedAt), arg(pgID(f.After.ID))
		// The plain bound on created_at is redundant with the row
		// comparison; it is there for the planner's row estimates.
		where = append(where, fmt.Sprintf("created_at %s= %s", cmp, t), fmt.Sprintf("(created_at, id) %s (%s, %s)", cmp, t, id))
	}
	q := "SELECT " + notificationColumns + " FROM notifications"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY created_at %s, id %s LIMIT %s", dir, dir, arg(f.Limit+1))
	return q, args
}

// byKeyQuery finds the row by its derived id (the primary key); the other
// two conditions make a hash collision impossible to return.
const byKeyQuery = `SELECT ` + notificationColumns + ` FROM notifications WHERE id = $1 AND receiver_id = $2 AND idempotency_key = $3`

// GetNotificationByKey returns the notification receiver got for the
// producer's idempotency key, or ErrNotFound.
func (s *Store) GetNotificationByKey(ctx context.Context, receiverID uuid.UUID, key string) (*Notification, error) {
	n, err := scanNotification(s.pool.QueryRow(ctx, byKeyQuery, pgID(tasks.NotificationID(receiverID, key)), pgID(receiverID), key))
	if err != nil {
		return nil, fmt.Errorf("get notification of %s by key: %w", receiverID, err)
	}
	return n, nil
}

// GetNotificationByKeyWithAttempts is GetNotificationByKey and ListAttempts
// in one round trip: the id is derived from (receiver, key), so the attempts
// can be asked for before the notification is known to exist.
func (s *Store) GetNotificationByKeyWithAttempts(ctx context.Context, receiverID uuid.UUID, key string) (*Notification, []Attempt, error) {
	id := tasks.NotificationID(receiverID, key)
	b := &pgx.Batch{}
	b.Queue(byKeyQuery, pgID(id), pgID(receiverID), key)
	b.Queue(attemptsQuery, pgID(id))
	br := s.pool.SendBatch(ctx, b)
	n, err := scanNotification(br.QueryRow())
	if err != nil {
		br.Close()
		return nil, nil, fmt.Errorf("get notification of %s by key: %w", receiverID, err)
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, nil, fmt.Errorf("list attempts %s: %w", id, err)
	}
	attempts, err := scanAttempts(rows, id)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("list attempts %s: %w", id, cerr)
	}
	if err != nil {
		return nil, nil, err
	}
	return n, attempts, nil
}

// scanNotifications reads every row of rows.
func scanNotifications(rows pgx.Rows) ([]*Notification, error) {
	defer rows.Close()
	var out []*Notification
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
