package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

// TestJobQueriesAreIndexBacked runs the jobs' and the summary API's real
// queries on a table large enough for the planner to care, and checks in
// pg_stat_user_indexes that each went through the index meant for it.
func TestJobQueriesAreIndexBacked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	busy, quiet := e.receiver(), e.receiver()
	// 20,000 delivered notifications over the last two weeks, a few pending.
	_, err := e.pool.Exec(ctx, `
		INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, status, max_attempts, created_at)
		SELECT gen_random_uuid(), $1, 't', g::text, '\x7b7d', 'delivered', 3, now() - make_interval(mins => g)
		FROM generate_series(1, 20000) g`, busy.ID)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.notification(quiet, "next_attempt_at = "+ago(time.Hour))
	}
	if _, err := e.pool.Exec(ctx, `ANALYZE notifications`); err != nil {
		t.Fatal(err)
	}
	// One connection, so that its index counters can be flushed on demand
	// (the server publishes them lazily) before they are read.
	st, err := store.Open(ctx, e.dsn+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	scans := func(index string) int64 {
		t.Helper()
		var n int64
		if _, err := st.Pool().Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		err := st.Pool().QueryRow(ctx, `SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = $1`, index).Scan(&n)
		if err != nil {
			t.Fatalf("index %s: %v", index, err)
		}
		return n
	}
	now := time.Now()
	cases := []struct {
		name, index string
		run         func() error
	}{
		{"re-drive scan", "notifications_pending_due", func() error {
			_, err := st.OverduePending(ctx, now, time.Time{}, uuid.Nil, 1000)
			return err
		}},
		{"retention delete", "notifications_created", func() error {
			_, _, err := st.DeleteExpired(ctx, now.Add(-30*24*time.Hour), 5000)
			return err
		}},
		{"daily summary", "notifications_created", func() error {
			_, err := st.SaveDailySummaries(ctx, now.Add(-24*time.Hour))
			return err
		}},
		{"live summary", "notifications_receiver_created", func() error {
			_, err := st.LiveSummary(ctx, quiet.ID, now.Add(-24*time.Hour), now)
			return err
		}},
	}
	for _, c := range cases {
		before := scans(c.index)
		if err := c.run(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if scans(c.index) == before {
			t.Errorf("%s did not use %s", c.name, c.index)
		}
	}
}
