package query

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/store"
)

// Listing defaults and bounds.
const (
	defaultListLimit = 50
	maxListLimit     = store.MaxListLimit
	// DefaultListMaxBytes bounds a page's payloads: a full page of the
	// largest payloads would otherwise be 500 × 256 KiB in memory and on
	// the wire. Past it the page ends early, with a cursor to the rest.
	DefaultListMaxBytes = 4 << 20
)

// listParams are the query parameters GET /v1/notifications accepts; any
// other parameter is refused, so a typo ("statuses=failed") does not
// silently list everything.
var listParams = []string{"status", "event_type", "idempotency_key", "created_after", "created_before",
	"order", "limit", "cursor", "receiver_id"}

var validStatuses = []string{store.StatusPending, store.StatusDelivered, store.StatusFailed, store.StatusCancelled}

// listPage is the body of a listing.
type listPage struct {
	Data []*store.Notification `json:"data"`
	// NextCursor continues the listing; null on the last page.
	NextCursor *string `json:"next_cursor"`
	HasMore    bool    `json:"has_more"`
}

// listNotifications serves GET /v1/notifications. A receiver lists its own
// notifications; receiver_id naming another receiver answers 404, like
// every other route that names something a receiver may not see. An admin
// lists every receiver's, or one receiver's with receiver_id.
func (s *Server) listNotifications(c echo.Context) error {
	p := principalOf(c)
	if !p.readsNotifications() {
		return errForbidden
	}
	f, err := listFilter(p, c.QueryParams())
	if err != nil {
		return err
	}
	f.MaxBytes = s.cfg.ListMaxBytes
	rows, more, err := s.store.ListNotifications(c.Request().Context(), f)
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []*store.Notification{} // "data": [], never null
	}
	page := listPage{Data: rows, HasMore: more}
	if more {
		last := rows[len(rows)-1]
		cur := encodeCursor(store.Position{CreatedAt: last.CreatedAt, ID: last.ID}, f.Descending)
		page.NextCursor = &cur
	}
	return writeJSON(c, http.StatusOK, page, page.appendJSON)
}

// listFilter reads the listing's query parameters; see listParams.
func listFilter(p *principal, q url.Values) (store.ListFilter, error) {
	f := store.ListFilter{Limit: defaultListLimit, Descending: true}
	for name, vs := range q {
		if !slices.Contains(listParams, name) {
			return f, &APIError{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Field: name,
				Message: fmt.Sprintf("%s is not a known query parameter (known: %s)", name, strings.Join(listParams, ", "))}
		}
		if name != "status" && len(vs) > 1 {
			return f, fieldError(name, "must be given at most once")
		}
	}
	receiver, err := receiverScope(p, q.Get("receiver_id"), q.Has("receiver_id"))
	if err != nil {
		return f, err
	}
	f.ReceiverID = receiver
	if f.Statuses, err = parseStatuses(q["status"]); err != nil {
		return f, err
	}
	if q.Has("event_type") {
		if f.EventType = q.Get("event_type"); f.EventType == "" || len(f.EventType) > ingest.MaxEventTypeLen {
			return f, fieldError("event_type", fmt.Sprintf("must be 1 to %d bytes", ingest.MaxEventTypeLen))
		}
	}
	if q.Has("idempotency_key") {
		if f.IdempotencyKey = q.Get("idempotency_key"); f.IdempotencyKey == "" || len(f.IdempotencyKey) > ingest.MaxIdempotencyKeyLen {
			return f, fieldError("idempotency_key", fmt.Sprintf("must be 1 to %d bytes", ingest.MaxIdempotencyKeyLen))
		}
		if f.ReceiverID == nil {
			// Keys are the producer's, unique per receiver only; a lookup
			// across receivers would also need an index of its own.
			return f, fieldError("receiver_id", "is required with idempotency_key")
		}
	}
	if f.CreatedAfter, err = timeParam(q, "created_after"); err != nil {
		return f, err
	}
	if f.CreatedBefore, err = timeParam(q, "created_before"); err != nil {
		return f, err
	}
	if f.CreatedAfter != nil && f.CreatedBefore != nil && !f.CreatedAfter.Before(*f.CreatedBefore) {
		return f, fieldError("created_before", "must be later than created_after")
	}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		f.Descending = false
	default:
		return f, fieldError("order", `must be "asc" or "desc"`)
	}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxListLimit {
			return f, fieldError("limit", fmt.Sprintf("must be an integer from 1 to %d", maxListLimit))
		}
		f.Limit = n
	}
	if q.Has("cursor") {
		pos, err := decodeCursor(q.Get("cursor"), f.Descending)
		if err != nil {
			return f, err
		}
		f.After = pos
	}
	return f, nil
}

// receiverScope decides whose notifications a request may see: a
// receiver's own always (another id: 404), an admin's the named receiver
// or, when none is named, everyone's (nil).
func receiverScope(p *principal, raw string, given bool) (*uuid.UUID, error) {
	var id uuid.UUID
	if given {
		var err error
		if id, err = uuid.Parse(raw); err != nil {
			return nil, fieldError("receiver_id", "must be a receiver id (UUID)")
		}
	}
	if p.role == roleReceiver {
		if given && id != p.receiver {
			return nil, errNotFound
		}
		own := p.receiver
		return &own, nil
	}
	if !given {
		return nil, nil
	}
	return &id, nil
}

// parseStatuses reads repeated and comma-separated status parameters.
func parseStatuses(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for s := range strings.SplitSeq(v, ",") {
			s = strings.TrimSpace(s)
			if !slices.Contains(validStatuses, s) {
				return nil, fieldError("status", fmt.Sprintf("must be one or more of %s (got %q)", strings.Join(validStatuses, ", "), s))
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	if len(out) == len(validStatuses) {
		return nil, nil // every status: no filter
	}
	return out, nil
}

// timeParam reads a time parameter (see parseTime). An unescaped "+" in a
// query string arrives as a space ("…T10:00:00 08:00"); that is read as the
// "+" it was meant to be rather than refused.
func timeParam(q url.Values, name string) (*time.Time, error) {
	if !q.Has(name) {
		return nil, nil
	}
	raw := q.Get(name)
	if strings.Count(raw, " ") == 1 {
		raw = strings.Replace(raw, " ", "+", 1)
	}
	t, err := parseTime(name, raw)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// timeForms says which times the API reads, in every error about one.
const timeForms = "must be an RFC 3339 time, like 2006-01-02T15:04:05Z, or a date, like 2006-01-02 (midnight UTC)"

// parseTime reads an RFC 3339 time or a date (midnight UTC), the same forms
// notifyctl takes, so a time typed for one works for the other.
func parseTime(field, raw string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, raw); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, raw); err == nil {
		return t, nil
	}
	return time.Time{}, fieldError(field, timeForms)
}

// Cursors are opaque to clients: base64url (unpadded) of
//
//	version (1 byte) | order ('a' or 'd') | created_at (int64 µs since the epoch, big endian) | id (16 bytes)
//
// The order is inside so a cursor cannot continue a listing in the other
// direction, which would silently skip rows.
const (
	cursorVersion = 1
	cursorLen     = 1 + 1 + 8 + 16
)

func encodeCursor(p store.Position, descending bool) string {
	b := make([]byte, 0, cursorLen)
	b = append(b, cursorVersion, orderByte(descending))
	b = binary.BigEndian.AppendUint64(b, uint64(p.CreatedAt.UnixMicro()))
	b = append(b, p.ID[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, descending bool) (*store.Position, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion || (b[1] != 'a' && b[1] != 'd') {
		return nil, errInvalidCursor("the cursor is malformed; pass next_cursor from a previous page unchanged")
	}
	if b[1] != orderByte(descending) {
		return nil, errInvalidCursor("the cursor belongs to a listing in the other order; keep order the same while paging")
	}
	id, _ := uuid.FromBytes(b[10:])
	return &store.Position{CreatedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[2:10]))).UTC(), ID: id}, nil
}

func orderByte(descending bool) byte {
	if descending {
		return 'd'
	}
	return 'a'
}

func errInvalidCursor(msg string) *APIError {
	return &APIError{Status: http.StatusBadRequest, Code: "invalid_cursor", Field: "cursor", Message: msg}
}
