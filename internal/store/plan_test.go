package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// A look-up by id prepared while the table was empty must still use the
// primary key once the table has grown (and has not been analyzed, as
// before autovacuum's first pass). A plain connection shows why Open turns
// sequential scans off: its cached generic plan keeps scanning the table.
func TestCachedPlansUseIndexesAfterTheTableGrows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Database(t)
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	plain, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	r := newReceiver(t, s)

	// A batch of ids, as the worker looks them up.
	ids := "ARRAY[" + strings.Repeat("gen_random_uuid(), ", 9) + "gen_random_uuid()]"
	plan := func(pool *pgxpool.Pool) string {
		t.Helper()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		// A start-up: the table holds a page or two when the statement is
		// first planned, and a sequential scan is cheapest.
		if _, err := conn.Exec(ctx, `TRUNCATE notifications CASCADE`); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, max_attempts)
			SELECT gen_random_uuid(), $1, 't', 'k' || i, '{}', 3 FROM generate_series(1, 100) i`, r.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `PREPARE by_id(uuid[]) AS SELECT status FROM notifications WHERE id = ANY($1)`); err != nil {
			t.Fatal(err)
		}
		defer conn.Exec(ctx, `DEALLOCATE by_id`)
		// Postgres settles on a generic plan after five executions.
		for range 6 {
			if _, err := conn.Exec(ctx, `EXECUTE by_id(`+ids+`)`); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.Exec(ctx, `INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, max_attempts)
			SELECT gen_random_uuid(), $1, 't', 'k' || i, '{}', 3 FROM generate_series(1, 20000) i`, r.ID); err != nil {
			t.Fatal(err)
		}
		var lines []string
		rows, err := conn.Query(ctx, `EXPLAIN EXECUTE by_id(`+ids+`)`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}

	if p := plan(plain); !strings.Contains(p, "Seq Scan") {
		t.Logf("a plain connection no longer keeps a sequential scan here (Postgres changed?):\n%s", p)
	}
	if p := plan(s.Pool()); strings.Contains(p, "Seq Scan") {
		t.Fatalf("store connection scans the table after it grew:\n%s", p)
	}
}
