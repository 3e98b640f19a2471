package scheduler

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notifyd/notifyd/internal/partition"
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
	sqlDB := stdlib.OpenDBFromPool(e.pool)
	defer sqlDB.Close()
	if _, err := partition.Ensure(ctx, sqlDB, time.Now().AddDate(0, 0, -31), time.Now()); err != nil {
		t.Fatal(err)
	}
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
	// scans returns the index's scans and the sequential scans of each
	// partition holding rows (an empty one is read sequentially, for
	// nothing). The tables are partitioned: an index's scans are its
	// partitions'.
	type counts struct {
		index int64
		seq   map[string]int64
	}
	scans := func(index string) counts {
		t.Helper()
		c := counts{seq: map[string]int64{}}
		if _, err := st.Pool().Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		err := st.Pool().QueryRow(ctx, `SELECT coalesce(sum(idx_scan), 0)::int8 FROM pg_stat_user_indexes
			WHERE indexrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(nullif($1, '')))`, index).Scan(&c.index)
		if err != nil {
			t.Fatalf("index %s: %v", index, err)
		}
		rows, _ := st.Pool().Query(ctx, `SELECT relname, seq_scan FROM pg_stat_user_tables
			WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent IN ('notifications'::regclass, 'delivery_attempts'::regclass))
				AND n_tup_ins > 0`)
		var name string
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { c.seq[name] = n; return nil }); err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	day := now.Add(-24 * time.Hour).UTC().Truncate(partition.Day)
	cases := []struct {
		name, index string
		// wholePartitions: a job that reads every row of a day reads that
		// day's partitions through, and no other.
		wholePartitions []string
		run             func() error
	}{
		{"re-drive scan", "notifications_pending_due", nil, func() error {
			_, err := st.OverduePending(ctx, now, time.Time{}, uuid.Nil, 1000)
			return err
		}},
		{"daily summary", "", []string{partition.Name("notifications", day), partition.Name("delivery_attempts", day)}, func() error {
			_, err := st.SaveDailySummaries(ctx, now.Add(-24*time.Hour))
			return err
		}},
		{"live summary", "notifications_receiver_created", nil, func() error {
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
		if c.index != "" && after.index == before.index {
			t.Errorf("%s did not use %s", c.name, c.index)
		}
		for rel, n := range after.seq {
			if n != before.seq[rel] && !slices.Contains(c.wholePartitions, rel) {
				t.Errorf("%s scanned %s sequentially", c.name, rel)
			}
		}
	}
}
