package scheduler

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notifyd/notifyd/internal/partition"
	"github.com/notifyd/notifyd/internal/store"
)

// TestRetentionDropsExpiredPartitions: retention drops whole daily
// partitions past retention, with their attempts and their notifications'
// idempotency keys (so the same key is accepted anew), keeps a partition
// past retention while a notification in it is pending, never touches a
// partition within retention, and creates the partitions ahead that are
// missing.
func TestRetentionDropsExpiredPartitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now().UTC()
	today := now.Truncate(partition.Day)
	sqlDB := stdlib.OpenDBFromPool(e.pool)
	defer sqlDB.Close()
	if _, err := partition.Ensure(ctx, sqlDB, today.AddDate(0, 0, -3), now); err != nil {
		t.Fatal(err)
	}
	// A partition ahead gone missing: the run creates it again.
	ahead := today.AddDate(0, 0, partition.Ahead)
	if _, err := e.pool.Exec(ctx, `DROP TABLE `+partition.Name("notifications", ahead)+`, `+partition.Name("delivery_attempts", ahead)); err != nil {
		t.Fatal(err)
	}
	r := e.receiver()
	at := func(day time.Time) string {
		return fmt.Sprintf("created_at = '%s'", day.Add(time.Hour).Format(time.RFC3339))
	}
	terminal := ", status = 'delivered', next_attempt_at = NULL"
	cases := []struct {
		set      string
		attempts int
		dropped  bool
	}{
		{at(today.AddDate(0, 0, -3)) + terminal, 2, true},
		{at(today.AddDate(0, 0, -3)) + ", status = 'failed', next_attempt_at = NULL", 3, true},
		// Two days ago: past retention, but held by its pending notification.
		{at(today.AddDate(0, 0, -2)) + terminal, 1, false},
		{at(today.AddDate(0, 0, -2)), 1, false},
		// Yesterday's partition ends less than the retention (24 h) ago.
		{at(today.AddDate(0, 0, -1)) + terminal, 1, false},
		{"status = 'failed', next_attempt_at = NULL", 1, false},
	}
	ns := make([]*store.Notification, len(cases))
	for i, c := range cases {
		ns[i] = e.notification(r, c.set)
		e.attempts(ns[i], make([]int, c.attempts)...)
	}
	s := e.scheduler(Config{Retention: 24 * time.Hour, RetentionBatch: 1, RetentionPause: time.Millisecond})
	res, err := s.RunRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, held := partition.Name("notifications", today.AddDate(0, 0, -3)), partition.Name("notifications", today.AddDate(0, 0, -2))
	if !slices.Equal(res.PartitionsDropped, []string{old}) || !slices.Equal(res.PartitionsHeld, []string{held}) ||
		!slices.Contains(res.PartitionsCreated, partition.Name("notifications", ahead)) || res.DefaultRows != 0 {
		t.Fatalf("result %+v: want %s dropped, %s held, %s created", res, old, held, partition.Name("notifications", ahead))
	}
	for i, c := range cases {
		_, err := e.store.GetNotification(ctx, ns[i].ID)
		var attempts, keys int
		if err := e.pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM delivery_attempts WHERE notification_id = $1),
			(SELECT count(*) FROM notification_keys WHERE id = $1)`, ns[i].ID).Scan(&attempts, &keys); err != nil {
			t.Fatal(err)
		}
		switch {
		case c.dropped && (err == nil || attempts != 0 || keys != 0):
			t.Errorf("case %d (%s) kept: %v, %d attempts, %d keys", i, c.set, err, attempts, keys)
		case !c.dropped && (err != nil || attempts != c.attempts || keys != 1):
			t.Errorf("case %d (%s) lost: %v, %d attempts, %d keys", i, c.set, err, attempts, keys)
		}
	}
	var gone bool
	if err := e.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NULL AND to_regclass($2) IS NULL`,
		old, partition.Attempts(old)).Scan(&gone); err != nil || !gone {
		t.Fatalf("partition %s still exists: %v", old, err)
	}
	// The key of a dropped notification is free: the same key is a new
	// notification, today.
	again, created, err := e.store.InsertNotification(ctx, store.NewNotification{ID: ns[0].ID, ReceiverID: r.ID,
		EventType: ns[0].EventType, IdempotencyKey: ns[0].IdempotencyKey, Payload: []byte(`{}`), MaxAttempts: 3})
	if err != nil || !created || again.CreatedAt.Before(today) {
		t.Fatalf("same key after retention: %+v created=%v %v", again, created, err)
	}

	// Once nothing in it is pending, the held partition goes too.
	if _, err := e.pool.Exec(ctx, `UPDATE notifications SET status = 'cancelled', next_attempt_at = NULL WHERE id = $1`, ns[3].ID); err != nil {
		t.Fatal(err)
	}
	res, err = s.RunRetention(ctx)
	if err != nil || !slices.Equal(res.PartitionsDropped, []string{held}) || len(res.PartitionsHeld) != 0 || len(res.PartitionsCreated) != 0 {
		t.Fatalf("second run: %+v %v", res, err)
	}
}

// TestRetentionStopsOnShutdown: the batched part of retention (audit events)
// stops between batches when the scheduler shuts down.
func TestRetentionStopsOnShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for range 4 {
		if err := e.store.InsertAuditEvent(context.Background(), &store.AuditEvent{OccurredAt: time.Now().Add(-48 * time.Hour),
			PrincipalKind: "admin", Method: "PATCH", Route: "/v1/receivers/:id", Status: 200, RemoteIP: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A pause long enough that only shutdown can end it.
	s := e.scheduler(Config{Retention: 24 * time.Hour, RetentionBatch: 1, RetentionPause: time.Hour})
	done := make(chan struct{})
	var res RetentionResult
	var err error
	go func() {
		defer close(done)
		res, err = s.RunRetention(ctx)
	}()
	// Wait for the first batch to be gone, then shut down.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first batch not deleted; %d rows left", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("retention did not stop on shutdown")
	}
	if err == nil || res.AuditEvents != 1 {
		t.Fatalf("interrupted run: %+v %v", res, err)
	}
}
