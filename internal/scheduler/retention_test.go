package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/store"
)

func TestRetentionDeletesOldTerminalNotificationsInBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	r := e.receiver()
	old := "created_at = " + ago(25*time.Hour)
	recent := "created_at = " + ago(23*time.Hour)
	cases := []struct {
		set      string
		attempts int
		deleted  bool
	}{
		{old + ", status = 'delivered', next_attempt_at = NULL", 1, true},
		{old + ", status = 'delivered', next_attempt_at = NULL", 2, true},
		{old + ", status = 'failed', next_attempt_at = NULL", 3, true},
		{old + ", status = 'failed', next_attempt_at = NULL", 3, true},
		{old + ", status = 'cancelled', next_attempt_at = NULL", 0, true},
		{old + ", status = 'cancelled', next_attempt_at = NULL", 1, true},
		{old + ", status = 'delivered', next_attempt_at = NULL", 2, true},
		// Pending is never deleted, however old.
		{old, 2, false},
		{old, 0, false},
		{recent + ", status = 'delivered', next_attempt_at = NULL", 1, false},
		{recent + ", status = 'failed', next_attempt_at = NULL", 3, false},
		{recent + ", status = 'cancelled', next_attempt_at = NULL", 0, false},
		{recent, 1, false},
	}
	var wantNotifications, wantAttempts int64
	ns := make([]*store.Notification, len(cases))
	for i, c := range cases {
		ns[i] = e.notification(r, c.set)
		e.attempts(ns[i], make([]int, c.attempts)...)
		if c.deleted {
			wantNotifications++
			wantAttempts += int64(c.attempts)
		}
	}

	s := e.scheduler(Config{Retention: 24 * time.Hour, RetentionBatch: 3, RetentionPause: time.Millisecond})
	res, err := s.RunRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 7 rows in batches of 3: 3, 3, 1.
	if res.Notifications != wantNotifications || res.Attempts != wantAttempts || res.Batches != 3 || res.Skipped {
		t.Fatalf("result %+v, want %d notifications and %d attempts in 3 batches", res, wantNotifications, wantAttempts)
	}
	for i, c := range cases {
		_, err := e.store.GetNotification(ctx, ns[i].ID)
		var left int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM delivery_attempts WHERE notification_id = $1`, ns[i].ID).Scan(&left); err != nil {
			t.Fatal(err)
		}
		switch {
		case c.deleted && err == nil:
			t.Errorf("case %d (%s) was kept", i, c.set)
		case c.deleted && left != 0:
			t.Errorf("case %d (%s): %d attempts left behind", i, c.set, left)
		case !c.deleted && err != nil:
			t.Errorf("case %d (%s) was deleted: %v", i, c.set, err)
		case !c.deleted && left != c.attempts:
			t.Errorf("case %d (%s): %d attempts left, want %d", i, c.set, left, c.attempts)
		}
	}

	res, err = s.RunRetention(ctx)
	if err != nil || res.Notifications != 0 || res.Attempts != 0 || res.Batches != 1 {
		t.Fatalf("second run: %+v %v", res, err)
	}
}

func TestRetentionStopsOnShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.receiver()
	for range 4 {
		e.notification(r, "created_at = "+ago(48*time.Hour)+", status = 'delivered', next_attempt_at = NULL")
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
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM notifications`).Scan(&n); err != nil {
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
	if err == nil || res.Notifications != 1 || res.Batches != 1 {
		t.Fatalf("interrupted run: %+v %v", res, err)
	}
}
