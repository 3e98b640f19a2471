package query

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

type testPage struct {
	Data       []store.Notification `json:"data"`
	NextCursor *string              `json:"next_cursor"`
	HasMore    bool                 `json:"has_more"`
}

func ids(ns []store.Notification) []uuid.UUID {
	out := make([]uuid.UUID, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

// pageAll lists with query q (without cursor) page by page and returns every
// row; between pages it calls between(page number).
func (a *testAPI) pageAll(token, q string, between func(page int)) []store.Notification {
	a.t.Helper()
	var all []store.Notification
	cursor := ""
	for page := 0; page < 100; page++ {
		path := "/v1/notifications?" + q
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var p testPage
		a.must(http.StatusOK, "GET", path, token, nil, &p)
		limit := 50
		if v, err := url.ParseQuery(q); err == nil && v.Has("limit") {
			fmt.Sscan(v.Get("limit"), &limit)
		}
		switch {
		case p.HasMore && (len(p.Data) != limit || p.NextCursor == nil || *p.NextCursor == ""):
			a.t.Fatalf("page %d: has_more with %d rows (limit %d), cursor %v", page, len(p.Data), limit, p.NextCursor)
		case !p.HasMore && p.NextCursor != nil:
			a.t.Fatalf("page %d: last page has next_cursor %q", page, *p.NextCursor)
		case p.Data == nil:
			a.t.Fatalf("page %d: data is null, want []", page)
		}
		all = append(all, p.Data...)
		if !p.HasMore {
			return all
		}
		cursor = *p.NextCursor
		if between != nil {
			between(page)
		}
	}
	a.t.Fatal("listing does not end")
	return nil
}

// TestPaginationAcrossInserts pages through a receiver's notifications in
// ascending order while new ones arrive between pages: every row appears
// exactly once, in (created_at, id) order, and the new ones at the end.
func TestPaginationAcrossInserts(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r, other := a.receiver(), a.receiver()
	var want []uuid.UUID
	for i := range 40 {
		want = append(want, a.insert(r, fmt.Sprintf("order-%d", i), "trade.paid").ID)
		if i%10 == 0 {
			a.insert(other, fmt.Sprintf("order-%d", i), "trade.paid") // never listed for r
		}
	}
	got := a.pageAll(r.APIKey, "order=asc&limit=7", func(page int) {
		if page < 5 {
			for j := range 3 {
				want = append(want, a.insert(r, fmt.Sprintf("late-%d-%d", page, j), "trade.paid").ID)
			}
		}
	})
	if len(want) != 55 {
		t.Fatalf("setup: %d rows", len(want))
	}
	gotIDs := ids(got)
	seen := map[uuid.UUID]bool{}
	for i, n := range got {
		if seen[n.ID] {
			t.Fatalf("row %s listed twice", n.ID)
		}
		seen[n.ID] = true
		if n.ReceiverID != r.ID {
			t.Fatalf("another receiver's row %s listed", n.ID)
		}
		if i > 0 {
			prev := got[i-1]
			if n.CreatedAt.Before(prev.CreatedAt) || (n.CreatedAt.Equal(prev.CreatedAt) && n.ID.String() < prev.ID.String()) {
				t.Fatalf("rows %d and %d out of (created_at, id) order", i-1, i)
			}
		}
	}
	// Rows were inserted one after the other, so creation order is insertion order.
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("listed %d rows, inserted %d; listed order differs from insertion order", len(gotIDs), len(want))
	}

	// Newest first gives the same rows reversed, also in pages.
	desc := ids(a.pageAll(r.APIKey, "limit=9", nil))
	slices.Reverse(desc)
	if !slices.Equal(desc, want) {
		t.Fatal("descending listing is not the ascending one reversed")
	}
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r, other := a.receiver(), a.receiver()
	mk := func(key, event, status string, age time.Duration) uuid.UUID {
		n := a.insert(r, key, event)
		a.exec(`UPDATE notifications SET status = $2::text::notification_status, created_at = now() - make_interval(secs => $3),
			next_attempt_at = CASE WHEN $2::text = 'pending' THEN next_attempt_at END WHERE id = $1`, n.ID, status, age.Seconds())
		return n.ID
	}
	day := 24 * time.Hour
	failedOld := mk("o-1", "trade.paid", "failed", 3*day)
	failedYesterday := mk("o-2", "trade.paid", "failed", day+2*time.Hour)
	deliveredYesterday := mk("o-3", "trade.refund", "delivered", day+time.Hour)
	cancelledToday := mk("o-4", "trade.paid", "cancelled", time.Hour)
	pendingNow := mk("o-5", "trade.refund", "pending", 0)
	a.insert(other, "o-2", "trade.paid")

	yesterday := time.Now().Add(-2 * day).UTC().Format(time.RFC3339)
	today := time.Now().Add(-day).UTC().Format(time.RFC3339Nano)
	cases := []struct {
		query string
		want  []uuid.UUID // oldest first
	}{
		{"", []uuid.UUID{failedOld, failedYesterday, deliveredYesterday, cancelledToday, pendingNow}},
		{"status=failed", []uuid.UUID{failedOld, failedYesterday}},
		{"status=failed&created_after=" + yesterday + "&created_before=" + today, []uuid.UUID{failedYesterday}},
		{"status=failed,cancelled", []uuid.UUID{failedOld, failedYesterday, cancelledToday}},
		{"status=failed&status=pending", []uuid.UUID{failedOld, failedYesterday, pendingNow}},
		{"status=pending,delivered,failed,cancelled", []uuid.UUID{failedOld, failedYesterday, deliveredYesterday, cancelledToday, pendingNow}},
		{"event_type=trade.refund", []uuid.UUID{deliveredYesterday, pendingNow}},
		{"event_type=trade.refund&status=pending", []uuid.UUID{pendingNow}},
		{"idempotency_key=o-2", []uuid.UUID{failedYesterday}},
		{"idempotency_key=nope", nil},
		{"created_after=" + yesterday, []uuid.UUID{failedYesterday, deliveredYesterday, cancelledToday, pendingNow}},
		{"created_before=" + today, []uuid.UUID{failedOld, failedYesterday, deliveredYesterday}},
		{"receiver_id=" + r.ID.String(), []uuid.UUID{failedOld, failedYesterday, deliveredYesterday, cancelledToday, pendingNow}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			a := a.with(t)
			got := ids(a.pageAll(r.APIKey, "order=asc&limit=2&"+c.query, nil))
			if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			// The admin sees the same through receiver_id.
			q := "order=asc&" + c.query
			if !strings.Contains(q, "receiver_id=") {
				q += "&receiver_id=" + r.ID.String()
			}
			admin := ids(a.pageAll(testAdminToken, q, nil))
			if !slices.Equal(admin, got) {
				t.Fatalf("admin got %v, receiver got %v", admin, got)
			}
		})
	}
	// An admin without receiver_id lists every receiver.
	all := a.pageAll(testAdminToken, "limit=500", nil)
	if len(all) != 6 {
		t.Fatalf("admin listing of all receivers: %d rows, want 6", len(all))
	}
	// A "+" offset sent unescaped arrives as a space and still parses.
	var p testPage
	a.must(http.StatusOK, "GET", "/v1/notifications?created_after="+time.Now().Add(-2*day).Format("2006-01-02T15:04:05")+"+00:00", r.APIKey, nil, &p)
}

// TestListRejectsBadParameters: malformed cursors, windows and limits are
// refused with the JSON error body and the offending field.
func TestListRejectsBadParameters(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	for i := range 3 {
		a.insert(r, fmt.Sprintf("k%d", i), "e")
	}
	var p testPage
	a.must(http.StatusOK, "GET", "/v1/notifications?order=asc&limit=1", r.APIKey, nil, &p)
	ascCursor := *p.NextCursor
	a.must(http.StatusOK, "GET", "/v1/notifications?limit=1", r.APIKey, nil, &p)
	descCursor := *p.NextCursor
	raw, _ := base64.RawURLEncoding.DecodeString(ascCursor)
	badVersion := append([]byte{9}, raw[1:]...)
	badOrder := append([]byte{raw[0], 'x'}, raw[2:]...)

	cases := []struct {
		query      string
		status     int
		code       string
		field      string
		adminToken bool
	}{
		{query: "limit=0", status: 422, code: "invalid_field", field: "limit"},
		{query: "limit=501", status: 422, code: "invalid_field", field: "limit"},
		{query: "limit=-3", status: 422, code: "invalid_field", field: "limit"},
		{query: "limit=ten", status: 422, code: "invalid_field", field: "limit"},
		{query: "limit=1&limit=2", status: 422, code: "invalid_field", field: "limit"},
		{query: "order=newest", status: 422, code: "invalid_field", field: "order"},
		{query: "status=done", status: 422, code: "invalid_field", field: "status"},
		{query: "status=", status: 422, code: "invalid_field", field: "status"},
		{query: "status=failed,", status: 422, code: "invalid_field", field: "status"},
		{query: "event_type=", status: 422, code: "invalid_field", field: "event_type"},
		{query: "created_after=yesterday", status: 422, code: "invalid_field", field: "created_after"},
		{query: "created_before=2024-13-01T00:00:00Z", status: 422, code: "invalid_field", field: "created_before"},
		{query: "created_after=2024-1-1", status: 422, code: "invalid_field", field: "created_after"},
		{query: "created_after=2024-01-01", status: 200}, // a date: midnight UTC (TestDateForms)
		{query: "created_after=2024-01-02T00:00:00Z&created_before=2024-01-01T00:00:00Z", status: 422, code: "invalid_field", field: "created_before"},
		{query: "created_after=2024-01-01T00:00:00Z&created_before=2024-01-01T00:00:00Z", status: 422, code: "invalid_field", field: "created_before"},
		{query: "receiver_id=shop-1", status: 422, code: "invalid_field", field: "receiver_id"},
		{query: "statuses=failed", status: 422, code: "invalid_field", field: "statuses"},
		{query: "idempotency_key=o-1", status: 422, code: "invalid_field", field: "receiver_id", adminToken: true},
		{query: "cursor=%21%21%21", status: 400, code: "invalid_cursor", field: "cursor"},
		{query: "cursor=", status: 400, code: "invalid_cursor", field: "cursor"},
		{query: "cursor=" + ascCursor[:len(ascCursor)-2], status: 400, code: "invalid_cursor", field: "cursor"},
		{query: "cursor=" + base64.RawURLEncoding.EncodeToString(badVersion), status: 400, code: "invalid_cursor", field: "cursor"},
		{query: "cursor=" + base64.RawURLEncoding.EncodeToString(badOrder), status: 400, code: "invalid_cursor", field: "cursor"},
		{query: "cursor=" + ascCursor, status: 400, code: "invalid_cursor", field: "cursor"}, // default order is desc
		{query: "order=asc&cursor=" + descCursor, status: 400, code: "invalid_cursor", field: "cursor"},
		{query: "order=desc&cursor=" + ascCursor, status: 400, code: "invalid_cursor", field: "cursor"},
		{query: "cursor=" + descCursor, status: 200},
		{query: "order=asc&cursor=" + ascCursor, status: 200},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			a := a.with(t)
			token := r.APIKey
			if c.adminToken {
				token = testAdminToken
			}
			code, body := a.do("GET", "/v1/notifications?"+c.query, token, nil)
			if code != c.status {
				t.Fatalf("status %d, want %d: %s", code, c.status, body)
			}
			if c.status == 200 {
				return
			}
			e := apiErr(t, body)
			if e.Code != c.code || e.Field != c.field {
				t.Fatalf("error %+v, want code %s field %s", e, c.code, c.field)
			}
		})
	}
}

func TestGetByKey(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r, other := a.receiver(), a.receiver()
	keys := []string{"order-2024-0001", "合同/42 #x?y", "50%off"}
	for _, key := range keys {
		id := a.ingest(r, key, "trade.paid")
		otherID := a.ingest(other, key, "trade.paid")             // same key, other receiver
		path := "/v1/notifications/by-key/" + url.PathEscape(key) // "/" as %2F
		var n notificationView
		a.must(http.StatusOK, "GET", path, r.APIKey, nil, &n)
		if n.ID != id || n.IdempotencyKey != key || n.ReceiverID != r.ID {
			t.Fatalf("%q: got %+v", key, n.Notification)
		}
		a.must(http.StatusOK, "GET", path+"?receiver_id="+other.ID.String(), testAdminToken, nil, &n)
		if n.ID != otherID {
			t.Fatalf("%q: admin with receiver_id got %s, want %s", key, n.ID, otherID)
		}
	}
	for _, c := range []struct {
		path, token string
		status      int
	}{
		{"/v1/notifications/by-key/no-such-order", r.APIKey, 404},
		{"/v1/notifications/by-key/order-2024-0001?receiver_id=" + other.ID.String(), r.APIKey, 404},
		{"/v1/notifications/by-key/order-2024-0001?receiver_id=" + r.ID.String(), r.APIKey, 200},
		{"/v1/notifications/by-key/order-2024-0001", testAdminToken, 422},
		{"/v1/notifications/by-key/order-2024-0001?receiver_id=" + uuid.NewString(), testAdminToken, 404},
		{"/v1/notifications/by-key/order-2024-0001", testProducerToken, 403},
	} {
		code, body := a.do("GET", c.path, c.token, nil)
		if code != c.status {
			t.Errorf("GET %s: %d %s, want %d", c.path, code, body, c.status)
		}
		if code >= 400 {
			apiErr(t, body)
		}
	}
}
