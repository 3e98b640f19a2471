package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

// TestScanNotificationRowsMatchesScan: the wire decoder of listing pages
// reads every column exactly as pgx's generic Scan does, NULLs and odd
// values included, and the pool's rows do take that path.
func TestScanNotificationRowsMatchesScan(t *testing.T) {
	t.Parallel()
	_, pool := testenv.Pool(t)
	s := New(pool)
	ctx := context.Background()
	r := &Receiver{ID: uuid.New(), Name: "shop", CallbackURL: "https://example.com/cb", SigningSecret: "whsec_x"}
	if err := s.CreateReceiver(ctx, r, HashAPIKey(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		key := fmt.Sprintf("k-%d", i)
		n := NewNotification{ID: tasks.NotificationID(r.ID, key), ReceiverID: r.ID, EventType: []string{"trade.paid", "refund", "é<>&"}[i%3],
			IdempotencyKey: key, Payload: []byte(`{"i":` + fmt.Sprint(i) + `}`), MaxAttempts: i}
		if i%4 == 1 {
			n.CallbackURL = "https://example.com/other"
		}
		if i == 5 {
			n.Payload = []byte{} // empty, not NULL
		}
		if _, _, err := s.InsertNotification(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// Every status, and every nullable column both set and NULL.
	for _, sql := range []string{
		`UPDATE notifications SET status = 'delivered', attempts = 1, delivered_at = now(), last_attempt_at = now() - interval '1 ms',
			next_attempt_at = NULL, last_status_code = 200 WHERE idempotency_key IN ('k-1', 'k-2')`,
		`UPDATE notifications SET status = 'failed', attempts = 3, last_status_code = -1, last_error = 'HTTP 500 "x"', next_attempt_at = NULL
			WHERE idempotency_key = 'k-3'`,
		`UPDATE notifications SET status = 'cancelled', next_attempt_at = NULL, last_error = '' WHERE idempotency_key = 'k-4'`,
		`UPDATE notifications SET created_at = '1999-12-31 23:59:59.999999+00', next_attempt_at = '1901-02-03 04:05:06.7+03' WHERE idempotency_key = 'k-6'`,
		`UPDATE notifications SET created_at = '2000-01-01 00:00:00+00', attempts = 32767, max_attempts = -32768 WHERE idempotency_key = 'k-7'`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	all, args := listQuery(ListFilter{ReceiverID: &r.ID, Limit: 500})

	rows, err := pool.Query(ctx, all, args[0], 501)
	if err != nil {
		t.Fatal(err)
	}
	if !wireDecodable(rows.FieldDescriptions()) {
		t.Fatalf("the pool's rows are not in the form the wire decoder reads: %+v", rows.FieldDescriptions())
	}
	want, err := scanNotifications(rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 12 {
		t.Fatalf("%d rows", len(want))
	}
	// Small capacities make the decoder start new blocks mid-page.
	for _, capacity := range []int{0, 1, 5, 13} {
		rows, err := pool.Query(ctx, all, args[0], 501)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := scanNotificationRows(rows, capacity, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			for i := range min(len(got), len(want)) {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("capacity %d, row %d:\n got %+v\nwant %+v", capacity, i, *got[i], *want[i])
				}
			}
			t.Fatalf("capacity %d: %d rows, want %d", capacity, len(got), len(want))
		}
	}
	// And through ListNotifications, page by page.
	page, more, err := s.ListNotifications(ctx, ListFilter{ReceiverID: &r.ID, Limit: 5})
	if err != nil || !more || !reflect.DeepEqual(page, want[:5]) {
		t.Fatalf("first page: %v %v", more, err)
	}
}
