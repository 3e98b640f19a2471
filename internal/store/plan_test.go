package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// scanCounts are a table's cumulative scan counters.
type scanCounts struct{ seq, idx int64 }

// tableScans reads table's counters after making pool's only connection
// publish its own (the server publishes them lazily).
func tableScans(t *testing.T, pool *pgxpool.Pool, table string) scanCounts {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		t.Fatal(err)
	}
	var c scanCounts
	// A partitioned table's scans are its partitions': those holding rows
	// (an empty partition is read sequentially, for nothing).
	err := pool.QueryRow(ctx, `SELECT coalesce(sum(seq_scan), 0), coalesce(sum(idx_scan), 0) FROM pg_stat_user_tables
		WHERE relname = $1 OR (relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass) AND n_tup_ins > 0)`, table).
		Scan(&c.seq, &c.idx)
	if err != nil {
		t.Fatalf("scan counters of %s: %v", table, err)
	}
	return c
}

// openOneConn opens a store over a single connection, so that every
// statement of the test runs in one session and meets that session's cached
// plans. extra is appended to the URL.
func openOneConn(t *testing.T, dsn, extra string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn+"&pool_max_conns=1"+extra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// requirePlainPlanner fails unless pool's session plans with the server's
// defaults (no enable_* or plan_cache_mode of its own).
func requirePlainPlanner(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var bent []string
	rows, _ := pool.Query(context.Background(), `SELECT name || ' = ' || setting FROM pg_settings
		WHERE (name LIKE 'enable\_%' OR name = 'plan_cache_mode') AND setting IS DISTINCT FROM boot_val`)
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		bent = append(bent, b)
	}
	if err := rows.Err(); err != nil || len(bent) > 0 {
		t.Fatalf("the store's session changes planner settings %v (%v); the store must plan as a plain connection does", bent, err)
	}
}

// hotStatement is a statement notifyd runs per notification (the worker) or
// per API request, found through a primary key.
type hotStatement struct {
	name   string
	tables []string // each must be read through an index
	run    func(ctx context.Context, s *store.Store) error
	// noSeq are tables the statement must not scan sequentially, though it
	// may not read them through an index either.
	noSeq []string
}

func hotStatements(r *store.Receiver, ids []uuid.UUID, key string) []hotStatement {
	batch := ids[:10]
	var no int
	return []hotStatement{
		{name: "worker's batched state look-up", tables: []string{"notifications", "notification_keys"}, run: func(ctx context.Context, s *store.Store) error {
			_, err := s.DeliveryStates(ctx, batch)
			return err
		}},
		{name: "worker's look-up of notifications not on record", tables: []string{"notification_keys"}, run: func(ctx context.Context, s *store.Store) error {
			// A first attempt's: the Go client enqueues without writing.
			_, err := s.DeliveryStates(ctx, []uuid.UUID{uuid.New(), uuid.New(), uuid.New()})
			return err
		}},
		{name: "worker's first attempt record", noSeq: []string{"notifications", "notification_keys", "delivery_attempts"}, run: func(ctx context.Context, s *store.Store) error {
			recs := make([]store.AttemptRecord, 3)
			for i := range recs {
				id := uuid.New()
				recs[i] = store.AttemptRecord{
					Attempt:   store.Attempt{NotificationID: id, AttemptNo: 1, StartedAt: time.Now(), Outcome: store.OutcomeSuccess, StatusCode: 200},
					NewStatus: store.StatusDelivered,
					Create:    &store.NewNotification{ID: id, ReceiverID: r.ID, EventType: "t", IdempotencyKey: id.String(), Payload: []byte(`{}`), MaxAttempts: 3},
				}
			}
			return s.RecordAttempts(ctx, recs)
		}},
		{name: "worker's attempt record", tables: []string{"notifications", "delivery_attempts", "notification_keys"}, run: func(ctx context.Context, s *store.Store) error {
			// A new attempt number each time, so that the update runs too.
			no++
			recs := make([]store.AttemptRecord, len(batch))
			for i, id := range batch {
				recs[i] = store.AttemptRecord{
					Attempt:       store.Attempt{NotificationID: id, AttemptNo: 100 + no, StartedAt: time.Now(), Outcome: store.OutcomeFailure},
					NewStatus:     store.StatusPending,
					NextAttemptAt: time.Now().Add(time.Minute),
				}
			}
			return s.RecordAttempts(ctx, recs)
		}},
		{name: "get by id", tables: []string{"notifications"}, run: func(ctx context.Context, s *store.Store) error {
			_, err := s.GetNotification(ctx, ids[0])
			return err
		}},
		{name: "attempts by id", tables: []string{"delivery_attempts"}, run: func(ctx context.Context, s *store.Store) error {
			_, err := s.ListAttempts(ctx, ids[0])
			return err
		}},
		{name: "get by key", tables: []string{"notifications"}, run: func(ctx context.Context, s *store.Store) error {
			_, err := s.GetNotificationByKey(ctx, r.ID, key)
			return err
		}},
		{name: "get by key with attempts", tables: []string{"notifications", "delivery_attempts"}, run: func(ctx context.Context, s *store.Store) error {
			_, _, err := s.GetNotificationByKeyWithAttempts(ctx, r.ID, key)
			return err
		}},
		{name: "fail exhausted", tables: []string{"notifications"}, run: func(ctx context.Context, s *store.Store) error {
			_, err := s.FailExhausted(ctx, batch, "test")
			return err
		}},
	}
}

// insertNotifications adds n notifications of r with one attempt each,
// without analyzing the tables (autovacuum may not have run yet).
func insertNotifications(t *testing.T, s *store.Store, r *store.Receiver, from, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Pool().Exec(ctx, `
		WITH n AS (
			INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, max_attempts)
			SELECT gen_random_uuid(), $1, 't', 'k' || i, '{}', 3 FROM generate_series($2::int, $3::int) i
			RETURNING id, created_at
		)
		INSERT INTO delivery_attempts (notification_id, attempt_no, started_at, duration_ms, status_code, outcome, notification_created_at)
		SELECT id, 1, now(), 10, 500, 'failure', created_at FROM n`, r.ID, from, from+n-1)
	if err != nil {
		t.Fatal(err)
	}
}

// TestHotStatementsStayIndexScansAfterTheTableGrows is the cached-plan
// case: each hot statement runs many times in one session while the tables
// are nearly empty (a new deployment: just the rows the statements find),
// then the tables grow to 20,000 notifications, unanalyzed
// (as before autovacuum's first pass, or with autovacuum off), and the
// session runs the statements again. The table's scan counters show what
// the session really did: it must go through the indexes, notification_keys'
// included (the worker's statements joined it by a sequential scan while it
// held tens of thousands of rows). The session has no special settings
// (checked), as behind a transaction-mode PgBouncer.
//
// A control session runs the batched look-up as a named statement (pgx's
// default mode) to show the hazard is real: Postgres settles on a generic
// plan after five runs, made on the tiny table as a sequential scan, and
// keeps it; that is why DeliveryStates asks for a custom plan.
func TestHotStatementsStayIndexScansAfterTheTableGrows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Database(t)
	s := openOneConn(t, dsn, "")
	control := openOneConn(t, dsn, "")
	requirePlainPlanner(t, s.Pool())
	r := newReceiver(t, s)
	insertNotifications(t, s, r, 1, 10)
	var ids []uuid.UUID
	rows, _ := s.Pool().Query(ctx, `SELECT id FROM notifications ORDER BY idempotency_key LIMIT 10`)
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil || len(ids) != 10 {
		t.Fatalf("ids: %v %v", ids, err)
	}
	byKey := newNotification(r, "order-1")
	if _, _, err := s.InsertNotification(ctx, *byKey); err != nil {
		t.Fatal(err)
	}
	stmts := hotStatements(r, ids, byKey.IdempotencyKey)
	named := hotStatement{name: "the look-up as a named statement", tables: []string{"notifications"}, run: func(ctx context.Context, s *store.Store) error {
		rows, _ := s.Pool().Query(ctx, `SELECT id, status, attempts, max_attempts, next_attempt_at, created_at
			FROM notifications WHERE id = ANY($1)`, pgx.QueryExecModeCacheStatement, ids)
		rows.Close()
		return rows.Err()
	}}
	for range 10 {
		for _, st := range stmts {
			if err := st.run(ctx, s); err != nil {
				t.Fatalf("%s on the small table: %v", st.name, err)
			}
		}
		if err := named.run(ctx, control); err != nil {
			t.Fatal(err)
		}
	}
	insertNotifications(t, s, r, 1000, 20_000)

	run := func(on *store.Store, st hotStatement) (seq []string) {
		t.Helper()
		before := map[string]scanCounts{}
		for _, table := range st.tables {
			before[table] = tableScans(t, on.Pool(), table)
		}
		noSeqBefore := map[string]scanCounts{}
		for _, table := range st.noSeq {
			noSeqBefore[table] = tableScans(t, on.Pool(), table)
		}
		if err := st.run(ctx, on); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for _, table := range st.tables {
			after := tableScans(t, on.Pool(), table)
			if after.seq != before[table].seq || after.idx == before[table].idx {
				seq = append(seq, fmt.Sprintf("%s: seq scans %d → %d, index scans %d → %d",
					table, before[table].seq, after.seq, before[table].idx, after.idx))
			}
		}
		for table, was := range noSeqBefore {
			if after := tableScans(t, on.Pool(), table); after.seq != was.seq {
				seq = append(seq, fmt.Sprintf("%s: seq scans %d → %d", table, was.seq, after.seq))
			}
		}
		return seq
	}
	for _, st := range stmts {
		if bad := run(s, st); bad != nil {
			t.Errorf("%s did not use indexes after the tables grew: %v", st.name, bad)
		}
	}
	if bad := run(control, named); bad == nil {
		t.Errorf("%s no longer keeps a sequential scan: the set-up does not reproduce a cached generic plan any more, so the test proves nothing", named.name)
	}
}
