package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

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
	// MaxBytes, if not zero, also ends the page once its payloads pass
	// this many bytes (a page always holds at least one row).
	MaxBytes int
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
	out, cut, err := scanNotificationRows(rows, f.Limit+1, f.MaxBytes)
	if err != nil {
		return nil, false, fmt.Errorf("list notifications: %w", err)
	}
	more := cut || len(out) > f.Limit
	if len(out) > f.Limit {
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
			// The id is derived from (receiver, key): the primary key finds
			// it, in the one partition notification_keys names.
			id := arg(pgID(tasks.NotificationID(*f.ReceiverID, f.IdempotencyKey)))
			where = append(where, "id = "+id, "created_at = "+createdAtOf(id))
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
const byKeyQuery = `SELECT ` + notificationColumns + ` FROM notifications WHERE id = $1 AND receiver_id = $2 AND idempotency_key = $3
	AND created_at = (SELECT created_at FROM notification_keys WHERE id = $1)`

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

// scanNotificationRows reads rows of notificationColumns, as scanNotifications
// does, for pages: pgx's generic Scan plans every column of every row,
// allocates for each nullable column and converts through interfaces, which
// made scanning a third of a list request's CPU in the API. The column list
// is fixed, so the wire values are decoded here directly, into a few
// allocations per page. Rows that arrive in any other form (another type
// map, another format) go through scanNotifications.
//
// With maxBytes > 0 it stops before the row that would take the payloads
// past maxBytes (keeping at least one row) and reports cut: the rest of the
// result is read off the connection and dropped, not kept.
func scanNotificationRows(rows pgx.Rows, capacity, maxBytes int) (out []*Notification, cut bool, err error) {
	if !wireDecodable(rows.FieldDescriptions()) {
		out, err = scanNotifications(rows)
		if err != nil {
			return nil, false, err
		}
		size := 0
		for i, n := range out {
			if size += len(n.Payload); maxBytes > 0 && i > 0 && size > maxBytes {
				return out[:i], true, nil
			}
		}
		return out, false, nil
	}
	defer rows.Close()
	d := pageDecoder{capacity: max(capacity, 1)}
	out = make([]*Notification, 0, d.capacity)
	size := 0
	for rows.Next() {
		v := rows.RawValues()
		if size += len(v[5]); maxBytes > 0 && len(out) > 0 && size > maxBytes {
			return out, true, nil
		}
		n, err := d.decode(v)
		if err != nil {
			return nil, false, err
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// pageDecoder decodes the rows of one page. Rows, and what their pointer
// fields point to, live in blocks; a full block is left to the rows
// pointing into it and a new one started.
type pageDecoder struct {
	capacity  int
	ns        []Notification
	times     []time.Time
	codes     []int
	eventType string // usually the same on every row of a page
}

func (d *pageDecoder) newTime(t time.Time) *time.Time {
	if len(d.times) == cap(d.times) {
		d.times = make([]time.Time, 0, 3*d.capacity)
	}
	d.times = append(d.times, t)
	return &d.times[len(d.times)-1]
}

func (d *pageDecoder) newCode(c int) *int {
	if len(d.codes) == cap(d.codes) {
		d.codes = make([]int, 0, d.capacity)
	}
	d.codes = append(d.codes, c)
	return &d.codes[len(d.codes)-1]
}

// decode reads one row's raw values, in wireColumns' form.
func (d *pageDecoder) decode(v [][]byte) (*Notification, error) {
	if len(v) != len(wireColumns) {
		return nil, fmt.Errorf("scan notification: %d columns", len(v))
	}
	if v[2] == nil || v[3] == nil || v[6] == nil || v[9] == nil {
		return nil, errors.New("scan notification: NULL in a NOT NULL column")
	}
	if len(d.ns) == cap(d.ns) {
		d.ns = make([]Notification, 0, d.capacity)
	}
	d.ns = append(d.ns, Notification{})
	n := &d.ns[len(d.ns)-1]
	var err error
	if n.ID, err = wireUUID(v[0]); err != nil {
		return nil, err
	}
	if n.ReceiverID, err = wireUUID(v[1]); err != nil {
		return nil, err
	}
	if string(v[2]) != d.eventType {
		d.eventType = string(v[2])
	}
	n.EventType = d.eventType
	n.IdempotencyKey = string(v[3])
	if v[4] != nil {
		u := string(v[4])
		n.CallbackURL = &u
	}
	if v[5] != nil {
		n.Payload = make([]byte, len(v[5]))
		copy(n.Payload, v[5])
	}
	n.Status = internStatus(v[6])
	if n.Attempts, err = wireInt2(v[7]); err != nil {
		return nil, err
	}
	if n.MaxAttempts, err = wireInt2(v[8]); err != nil {
		return nil, err
	}
	if n.CreatedAt, err = wireTime(v[9]); err != nil {
		return nil, err
	}
	for i, dst := range [...]**time.Time{&n.NextAttemptAt, &n.LastAttemptAt, &n.DeliveredAt} {
		if raw := v[10+i]; raw != nil {
			t, err := wireTime(raw)
			if err != nil {
				return nil, err
			}
			*dst = d.newTime(t)
		}
	}
	if v[13] != nil {
		code, err := wireInt2(v[13])
		if err != nil {
			return nil, err
		}
		n.LastStatusCode = d.newCode(code)
	}
	if v[14] != nil {
		e := string(v[14])
		n.LastError = &e
	}
	return n, nil
}

// internStatus returns the status constant for a status label, so that a
// page's rows share four strings instead of allocating one each.
func internStatus(b []byte) string {
	switch string(b) {
	case StatusPending:
		return StatusPending
	case StatusDelivered:
		return StatusDelivered
	case StatusFailed:
		return StatusFailed
	case StatusCancelled:
		return StatusCancelled
	}
	return string(b)
}

// wireColumns is the wire form scanNotificationRows decodes, column by
// column of notificationColumns: the type and, where text and binary differ,
// the format pgx asked for. 0 is the status enum, whose OID varies by
// database (its text and binary forms are both the label).
var wireColumns = [...]struct {
	oid    uint32
	binary bool // must be binary; text types read the same in either format
}{
	{pgtype.UUIDOID, true}, {pgtype.UUIDOID, true}, {pgtype.TextOID, false}, {pgtype.TextOID, false},
	{pgtype.TextOID, false}, {pgtype.ByteaOID, true}, {0, false}, {pgtype.Int2OID, true}, {pgtype.Int2OID, true},
	{pgtype.TimestamptzOID, true}, {pgtype.TimestamptzOID, true}, {pgtype.TimestamptzOID, true},
	{pgtype.TimestamptzOID, true}, {pgtype.Int2OID, true}, {pgtype.TextOID, false},
}

func wireDecodable(fds []pgconn.FieldDescription) bool {
	if len(fds) != len(wireColumns) {
		return false
	}
	for i, c := range wireColumns {
		fd := fds[i]
		if c.oid != 0 && fd.DataTypeOID != c.oid || c.binary && fd.Format != pgtype.BinaryFormatCode {
			return false
		}
	}
	return true
}

func wireUUID(b []byte) (uuid.UUID, error) {
	if len(b) != 16 {
		return uuid.UUID{}, fmt.Errorf("scan notification: uuid of %d bytes", len(b))
	}
	return uuid.UUID(b), nil
}

func wireInt2(b []byte) (int, error) {
	if len(b) != 2 {
		return 0, fmt.Errorf("scan notification: int2 of %d bytes", len(b))
	}
	return int(int16(binary.BigEndian.Uint16(b))), nil
}

// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01.
const pgEpochMicros = 946684800 * 1_000_000

// wireTime decodes a binary timestamptz into the time.Time pgx's codec
// makes of it (time.Unix, so in the local zone).
func wireTime(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, fmt.Errorf("scan notification: timestamptz of %d bytes", len(b))
	}
	us := int64(binary.BigEndian.Uint64(b))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}, errors.New("scan notification: cannot scan an infinite timestamptz into time.Time")
	}
	return time.Unix(pgEpochMicros/1_000_000+us/1_000_000, (us%1_000_000)*1_000), nil
}
