package migrations_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/migrations"
)

// TestPartitionMigrationMovesRows: 00010 on a database with rows in the
// unpartitioned tables (notifications in every state, some 40 days old,
// with attempts), interrupted after its first steps while the previous
// version keeps writing, then run again: it resumes, every notification
// and attempt is found through the new statements, a known business key is
// still one notification, new ones land in the daily partitions, and the
// batched retention empties the old partition of what is past retention.
func TestPartitionMigrationMovesRows(t *testing.T) {
	ctx := context.Background()
	dbURL, db, p := databaseAt(t, 9)
	r := uuid.New()
	if _, err := db.ExecContext(ctx, `INSERT INTO receivers (id, name, callback_url, signing_secret)
		VALUES ($1, 'old', 'https://example.com/cb', 'whsec_x')`, r); err != nil {
		t.Fatal(err)
	}
	// 500 notifications: statuses in turn, one in ten 40 days old, each
	// with (i % 3) attempts.
	statuses := []string{"pending", "delivered", "failed", "cancelled"}
	insert := func(i int) {
		t.Helper()
		key := fmt.Sprintf("order-%d", i)
		id := tasks.NotificationID(r, key)
		var age time.Duration
		if i%10 == 8 {
			age = 40 * 24 * time.Hour
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload,
			status, attempts, max_attempts, created_at) VALUES ($1, $2, 't', $3, '{}', $4, $5, 5, now() - $6 * interval '1 microsecond')`,
			id, r, key, statuses[i%4], i%3, age.Microseconds()); err != nil {
			t.Fatal(err)
		}
		for a := 1; a <= i%3; a++ {
			if _, err := db.ExecContext(ctx, `INSERT INTO delivery_attempts (notification_id, attempt_no, started_at, duration_ms, outcome)
				VALUES ($1, $2, now(), 5, 'failure')`, id, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 500 {
		insert(i)
	}
	// A first run stops after its first steps (a crash, a deploy timeout),
	// and the previous version writes on, through the triggers.
	migrations.MoveBatch = 64
	if err := migrations.FirstPartitionSteps(ctx, db); err != nil {
		t.Fatal(err)
	}
	for i := 500; i < 520; i++ {
		insert(i)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}

	var kind string
	var legacy, notifications, attempts, keys int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT relkind::text FROM pg_class WHERE oid = 'notifications'::regclass),
		(SELECT count(*) FROM pg_inherits WHERE inhrelid = 'notifications_legacy'::regclass AND inhparent = 'notifications'::regclass),
		(SELECT count(*) FROM notifications), (SELECT count(*) FROM delivery_attempts), (SELECT count(*) FROM notification_keys)`).
		Scan(&kind, &legacy, &notifications, &attempts, &keys); err != nil {
		t.Fatal(err)
	}
	wantAttempts := 0
	for i := range 520 {
		wantAttempts += i % 3
	}
	if kind != "p" || legacy != 1 || notifications != 520 || keys != 520 || attempts != wantAttempts {
		t.Fatalf("after the move: kind %s, legacy attached %d, %d notifications, %d keys, %d attempts (want %d)",
			kind, legacy, notifications, keys, attempts, wantAttempts)
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 520 {
		id := tasks.NotificationID(r, fmt.Sprintf("order-%d", i))
		n, err := st.GetNotification(ctx, id)
		if err != nil || n.Status != statuses[i%4] {
			t.Fatalf("notification %d after the move: %+v %v", i, n, err)
		}
		as, err := st.ListAttempts(ctx, id)
		if err != nil || len(as) != i%3 {
			t.Fatalf("notification %d: %d attempts, want %d (%v)", i, len(as), i%3, err)
		}
	}
	// A key from before the move is still the one notification.
	old := store.NewNotification{ID: tasks.NotificationID(r, "order-7"), ReceiverID: r, EventType: "t",
		IdempotencyKey: "order-7", Payload: []byte(`{}`), MaxAttempts: 5}
	got, created, err := st.InsertNotification(ctx, old)
	if err != nil || created || got.Status != statuses[7%4] {
		t.Fatalf("known key after the move: created=%v %+v %v", created, got, err)
	}
	// A new one is recorded, and found.
	fresh := old
	fresh.IdempotencyKey, fresh.ID = "order-new", tasks.NotificationID(r, "order-new")
	if _, created, err := st.InsertNotification(ctx, fresh); err != nil || !created {
		t.Fatalf("new key after the move: %v %v", created, err)
	}
	if _, err := st.GetNotification(ctx, fresh.ID); err != nil {
		t.Fatal(err)
	}
	// Retention of the old partition: terminal rows past 30 days go in
	// batches, pending ones stay.
	var deleted int64
	for {
		n, _, err := st.DeleteExpired(ctx, time.Now().Add(-30*24*time.Hour), 7)
		if err != nil {
			t.Fatal(err)
		}
		if deleted += n; n < 7 {
			break
		}
	}
	var oldLeft int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM notifications WHERE created_at < now() - interval '30 days'`).Scan(&oldLeft); err != nil {
		t.Fatal(err)
	}
	// 52 old (i%10 == 8), the pending ones among them (i%4 == 0) kept.
	var oldPending int
	for i := range 520 {
		if i%10 == 8 && i%4 == 0 {
			oldPending++
		}
	}
	if oldLeft != oldPending || deleted != int64(52-oldPending) {
		t.Fatalf("old partition retention: deleted %d, %d old left, want %d deleted and the %d pending left", deleted, oldLeft, 52-oldPending, oldPending)
	}
}
