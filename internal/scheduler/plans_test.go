package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

// TestJobQueriesAreIndexBacked runs the jobs' and the summary API's real
// queries on a plain session (no planner settings) over analyzed tables of a
// realistic shape (a month of notifications, each with an attempt, as
// autovacuum would have analyzed them), and checks in the statistics views
// that each went through the index meant for it and scanned neither
// notifications nor their attempts sequentially.
func TestJobQueriesAreIndexBacked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	busy, quiet := e.receiver(), e.receiver()
	// 60,000 delivered notifications over the last 30 days (the default
	// retention), each with its attempt, and a few pending.
	_, err := e.pool.Exec(ctx, `
		WITH n AS (
			INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, status, max_attempts, created_at)
			SELECT gen_random_uuid(), $1, 't', g::text, '\x7b7d', 'delivered', 3, now() - make_interval(secs => g * 43)
			FROM generate_series(1, 60000) g
			RETURNING id, created_at
		)
		INSERT INTO delivery_attempts (notification_id, attempt_no, started_at, duration_ms, status_code, outcome, notification_created_at)
		SELECT id, 1, created_at, 20, 200, 'success', created_at FROM n`, busy.ID)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.notification(quiet, "next_attempt_at = "+ago(time.Hour))
	}
	if _, err := e.pool.Exec(ctx, `ANALYZE notifications; ANALYZE delivery_attempts`); err != nil {
		t.Fatal(err)
	}
	// One connection, so that its index counters can be flushed on demand
	// (the server publishes them lazily) before they are read.
	st, err := store.Open(ctx, e.dsn+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// scans returns the index's scans and the tables' sequential scans.
	type counts struct{ index, seq int64 }
	scans := func(index string) counts {
		t.Helper()
		var c counts
		if _, err := st.Pool().Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		err := st.Pool().QueryRow(ctx, `SELECT
			(SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = $1),
			(SELECT sum(seq_scan)::int8 FROM pg_stat_user_tables WHERE relname IN ('notifications', 'delivery_attempts'))`, index).
			Scan(&c.index, &c.seq)
		if err != nil {
			t.Fatalf("index %s: %v", index, err)
		}
		return c
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
		after := scans(c.index)
		if after.index == before.index {
			t.Errorf("%s did not use %s", c.name, c.index)
		}
		if after.seq != before.seq {
			t.Errorf("%s scanned notifications or delivery_attempts sequentially", c.name)
		}
	}
}
