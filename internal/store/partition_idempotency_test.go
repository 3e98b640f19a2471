package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notifyd/notifyd/internal/partition"
	"github.com/notifyd/notifyd/internal/store"
)

// TestSameKeyAcrossPartitions: a business key (receiver + idempotency key)
// is one notification for as long as it is kept, whichever day's partition
// it is in and whichever day the same key arrives again: through the HTTP
// ingest's insert, the worker's create-on-first-attempt, a raw insert
// dated another day, and many inserts at once.
func TestSameKeyAcrossPartitions(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	db := stdlib.OpenDBFromPool(s.Pool())
	defer db.Close()
	if _, err := partition.Ensure(ctx, db, time.Now().AddDate(0, 0, -2), time.Now()); err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, s)
	first := newNotification(r, "order-1")
	if _, created, err := s.InsertNotification(ctx, *first); err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	// Two days old: in another partition than today's.
	if _, err := s.Pool().Exec(ctx, `UPDATE notifications SET created_at = now() - interval '2 days' WHERE id = $1`, first.ID); err != nil {
		t.Fatal(err)
	}
	old, err := s.GetNotification(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	oldPartition := partition.Name("notifications", old.CreatedAt)

	// The ingest path.
	again, created, err := s.InsertNotification(ctx, *newNotification(r, "order-1"))
	if err != nil || created || !again.CreatedAt.Equal(old.CreatedAt) {
		t.Fatalf("ingest of the same key: created=%v %+v %v", created, again, err)
	}
	// The worker path: a Go-client task's attempt that would create it.
	rec := store.AttemptRecord{Attempt: store.Attempt{NotificationID: first.ID, AttemptNo: 1, StartedAt: time.Now(),
		Duration: time.Millisecond, StatusCode: 500, Outcome: "failure"},
		NewStatus: store.StatusPending, NextAttemptAt: time.Now().Add(time.Minute), Create: newNotification(r, "order-1")}
	if err := s.RecordAttempts(ctx, []store.AttemptRecord{rec}); err != nil {
		t.Fatal(err)
	}
	// A raw insert dated tomorrow (another partition) is skipped.
	tag, err := s.Pool().Exec(ctx, `INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, max_attempts, created_at)
		VALUES ($1, $2, 't', 'order-1', '{}', 3, now() + interval '1 day')`, first.ID, r.ID)
	if err != nil || tag.RowsAffected() != 0 {
		t.Fatalf("insert of the same id tomorrow: %v %v", tag, err)
	}

	var rows int
	var where, attemptsIn string
	if err := s.Pool().QueryRow(ctx, `SELECT count(*), min(tableoid::regclass::text),
		(SELECT min(tableoid::regclass::text) FROM delivery_attempts WHERE notification_id = $1)
		FROM notifications WHERE id = $1`, first.ID).Scan(&rows, &where, &attemptsIn); err != nil {
		t.Fatal(err)
	}
	if rows != 1 || where != oldPartition || attemptsIn != partition.Attempts(oldPartition) {
		t.Fatalf("%d rows of the key, in %s (attempts in %s), want 1 in %s", rows, where, attemptsIn, oldPartition)
	}
	got, err := s.GetNotification(ctx, first.ID)
	if err != nil || got.Attempts != 1 {
		t.Fatalf("after the worker's attempt: %+v %v", got, err)
	}

	// Many inserts of one new key at once: one wins, all see it.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			_, created, err := s.InsertNotification(ctx, *newNotification(r, "order-2"))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if created {
				wins++
			}
		})
	}
	wg.Wait()
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM notifications WHERE idempotency_key = 'order-2'`).Scan(&rows); err != nil || wins != 1 || rows != 1 {
		t.Fatalf("concurrent inserts: %d created, %d rows, %v", wins, rows, err)
	}
}
