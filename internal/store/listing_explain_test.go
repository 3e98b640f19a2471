package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notifyd/notifyd/internal/partition"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

// explainRows is how many notifications the plan test generates.
const explainRows = 1_000_000

// receiverUUID is the id of generated receiver r (1..100).
func receiverUUID(r int) uuid.UUID {
	return uuid.MustParse(fmt.Sprintf("00000000-0000-4000-8000-%012x", r))
}

// fillMillion loads a million notifications over 100 receivers spread over
// 90 days, with a realistic mix of statuses and event types, and analyses
// the table. Pseudo-random columns come from hashtext so the data (and so
// the plans) are the same on every run.
func fillMillion(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// Loading into a table without its secondary indexes and unique
	// constraints and building them afterwards is several times faster than
	// maintaining them row by row; so is skipping the per-row foreign key
	// trigger (session_replication_role, the test user is a superuser; the
	// generated receiver ids are valid by construction). The definitions are
	// read back from the migrated schema, so the plans are those of the real
	// indexes.
	var drop, rebuild []string
	rows, err := conn.Query(ctx, `
		SELECT 'DROP INDEX ' || quote_ident(indexname), indexdef FROM pg_indexes i
		WHERE tablename = 'notifications' AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conname = i.indexname)
		UNION ALL
		SELECT 'ALTER TABLE notifications DROP CONSTRAINT ' || quote_ident(conname),
		       'ALTER TABLE notifications ADD CONSTRAINT ' || quote_ident(conname) || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE conrelid = 'notifications'::regclass AND contype = 'u'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d, r string
		if err := rows.Scan(&d, &r); err != nil {
			t.Fatal(err)
		}
		// A partitioned index's definition reads "ON ONLY": built so, it
		// would have no partitions.
		drop, rebuild = append(drop, d), append(rebuild, strings.Replace(r, " ON ONLY ", " ON ", 1))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rebuild) < 3 {
		t.Fatalf("expected the migrations' indexes on notifications, found %v", rebuild)
	}
	// A partition for each day of the 90 (partitioned tables, migration
	// 00010), as the scheduler's retention job keeps them.
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	if _, err := partition.Ensure(ctx, sqlDB, time.Now().AddDate(0, 0, -91), time.Now()); err != nil {
		t.Fatal(err)
	}
	stmts := []string{`BEGIN`, `SET LOCAL session_replication_role = replica`, `SET LOCAL synchronous_commit = off`}
	stmts = append(stmts, drop...)
	stmts = append(stmts,
		`INSERT INTO receivers (id, name, callback_url, signing_secret)
		 SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(r), 12, '0'))::uuid, 'r' || r, 'https://example.com/cb',
		        'whsec_x'
		 FROM generate_series(1, 100) r`,
		`INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, status, attempts, max_attempts,
		                            created_at, next_attempt_at, last_attempt_at)
		 SELECT ('10000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
		        ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % 100), 12, '0'))::uuid,
		        CASE WHEN h % 97 = 0 THEN 'refund.rare' ELSE 'event.' || (h % 7) END,
		        'order-' || i,
		        '{"amount":1}'::bytea,
		        s::notification_status,
		        CASE s WHEN 'failed' THEN 8 WHEN 'pending' THEN 2 ELSE 1 END,
		        8,
		        c,
		        CASE WHEN s = 'pending' THEN c + interval '1 minute' END,
		        c
		 FROM (
		   SELECT i, h, now() - interval '90 days' + i * (interval '90 days' / `+fmt.Sprint(explainRows)+`) AS c,
		          CASE WHEN h % 100 < 94 THEN 'delivered' WHEN h % 100 < 97 THEN 'failed'
		               WHEN h % 100 < 99 THEN 'pending' ELSE 'cancelled' END AS s
		   FROM (SELECT i, abs(hashtext(i::text)) AS h FROM generate_series(1, `+fmt.Sprint(explainRows)+`) i) g
		 ) x`,
		// The claim trigger does this row by row; replica mode skips it.
		`INSERT INTO notification_keys SELECT id, created_at FROM notifications`)
	stmts = append(stmts, rebuild...)
	stmts = append(stmts, `COMMIT`, `ANALYZE receivers`, `ANALYZE notifications`, `ANALYZE notification_keys`)
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("fill: %s: %v", q, err)
		}
	}
	t.Logf("generated %d notifications in %s", explainRows, time.Since(start).Round(time.Millisecond))
}

// planNodes walks an EXPLAIN (FORMAT JSON) plan and returns "Node Type on
// Relation" for every node.
func planNodes(raw []byte) ([]string, error) {
	var doc []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) != 1 {
		return nil, fmt.Errorf("parse plan %s: %v", raw, err)
	}
	var out []string
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		desc, _ := n["Node Type"].(string)
		if rel, ok := n["Relation Name"].(string); ok {
			desc += " on " + rel
			if idx, ok := n["Index Name"].(string); ok {
				desc += " using " + idx
			}
		}
		out = append(out, desc)
		children, _ := n["Plans"].([]any)
		for _, c := range children {
			if m, ok := c.(map[string]any); ok {
				walk(m)
			}
		}
	}
	walk(doc[0].Plan)
	return out, nil
}

// shape is one statement the store issues, with realistic arguments.
type shape struct {
	name  string
	query string
	args  []any
}

func listShapes(now time.Time) []shape {
	r := receiverUUID(42)
	dayAgo, twoDaysAgo := now.Add(-24*time.Hour), now.Add(-48*time.Hour)
	mid := &Position{CreatedAt: now.Add(-45 * 24 * time.Hour), ID: uuid.MustParse("80000000-0000-4000-8000-000000000000")}
	var out []shape
	for _, scope := range []string{"receiver", "admin"} {
		for _, status := range [][]string{nil, {StatusFailed}, {StatusDelivered}, {StatusFailed, StatusCancelled}} {
			for _, event := range []string{"", "refund.rare", "event.3"} {
				for _, key := range []string{"", "order-4242"} {
					if key != "" && scope == "admin" {
						continue // the API requires receiver_id with idempotency_key
					}
					for _, window := range []string{"", "after", "before", "both"} {
						for _, desc := range []bool{false, true} {
							for _, after := range []*Position{nil, mid} {
								f := ListFilter{Statuses: status, EventType: event, IdempotencyKey: key, Descending: desc, After: after, Limit: 50}
								if scope == "receiver" {
									f.ReceiverID = &r
								}
								switch window {
								case "after":
									f.CreatedAfter = &dayAgo
								case "before":
									f.CreatedBefore = &dayAgo
								case "both":
									f.CreatedAfter, f.CreatedBefore = &twoDaysAgo, &dayAgo
								}
								q, args := listQuery(f)
								name := fmt.Sprintf("%s status=%v event=%q key=%q window=%s desc=%v cursor=%v",
									scope, status, event, key, window, desc, after != nil)
								out = append(out, shape{name: name, query: q, args: args})
							}
						}
					}
				}
			}
		}
	}
	out = append(out,
		shape{name: "by-key", query: byKeyQuery, args: []any{tasks.NotificationID(r, "order-4242"), r, "order-4242"}},
		shape{name: "recover", query: recoverBatch, args: []any{r, twoDaysAgo, dayAgo, 1000}},
		shape{name: "recover 14 days", query: recoverBatch, args: []any{r, now.Add(-14 * 24 * time.Hour), now, 1000}},
	)
	return out
}

// TestListQueriesUseIndexes checks the requirement that every list
// is served from an index: on a million notifications, no statement the
// query API issues may plan a sequential scan of notifications, neither
// with its actual arguments (custom plan) nor as the generic plan Postgres
// switches to for a prepared statement run many times. The session is a
// plain pool (no planner settings) and the table is analyzed after the load,
// as autovacuum would.
func TestListQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	_, pool := testenv.Pool(t)
	fillMillion(t, pool)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	occupied := occupiedPartitions(t, pool)
	shapes := listShapes(time.Now())
	for i, sh := range shapes {
		var custom []byte
		if err := conn.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sh.query, sh.args...).Scan(&custom); err != nil {
			t.Fatalf("%s: explain: %v", sh.name, err)
		}
		generic, err := explainGeneric(ctx, conn, fmt.Sprintf("explain_shape_%d", i), sh)
		if err != nil {
			t.Fatalf("%s: generic explain: %v", sh.name, err)
		}
		for kind, raw := range map[string][]byte{"custom": custom, "generic": generic} {
			nodes, err := planNodes(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes {
				if rel, ok := strings.CutPrefix(n, "Seq Scan on "); ok && occupied[strings.Fields(rel)[0]] {
					t.Errorf("%s (%s plan) scans notifications sequentially:\n  %s\n  plan: %s", sh.name, kind, sh.query, strings.Join(nodes, " > "))
					break
				}
			}
		}
	}
	t.Logf("checked %d statement shapes, custom and generic plans", len(shapes))
}

// occupiedPartitions names the tables holding rows (as analyzed) among
// notifications, its partitions and notification_keys: a sequential scan
// of an empty partition (the days ahead) costs nothing and is what the
// planner picks for it.
func occupiedPartitions(t *testing.T, pool *pgxpool.Pool) map[string]bool {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT relname FROM pg_class
		WHERE relname LIKE 'notification%' AND relkind = 'r' AND reltuples > 0`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out[name] = true
	}
	if err := rows.Err(); err != nil || len(out) < 90 {
		t.Fatalf("occupied partitions: %v %v", out, err)
	}
	return out
}

// explainGeneric plans sh as a prepared statement with plan_cache_mode =
// force_generic_plan: the plan that ignores the argument values.
func explainGeneric(ctx context.Context, conn *pgxpool.Conn, name string, sh shape) ([]byte, error) {
	if _, err := conn.Conn().Prepare(ctx, name, sh.query); err != nil {
		return nil, err
	}
	defer conn.Conn().Deallocate(context.Background(), name)
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		return nil, err
	}
	defer conn.Exec(context.Background(), "RESET plan_cache_mode")
	params := make([]string, len(sh.args))
	for i, a := range sh.args {
		params[i] = literal(a)
	}
	var raw []byte
	// EXECUTE's arguments cannot be bind parameters (a utility statement
	// has none), so they are spelled out as literals.
	err := conn.QueryRow(ctx, fmt.Sprintf("EXPLAIN (FORMAT JSON) EXECUTE %s(%s)", name, strings.Join(params, ", "))).Scan(&raw)
	return raw, err
}

// literal spells a test argument as SQL.
func literal(v any) string {
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	switch v := v.(type) {
	case uuid.UUID:
		return quote(v.String())
	case pgtype.UUID:
		return quote(uuid.UUID(v.Bytes).String())
	case string:
		return quote(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = quote(s)
		}
		return "ARRAY[" + strings.Join(q, ", ") + "]::text[]"
	case time.Time:
		return quote(v.Format(time.RFC3339Nano))
	case int:
		return fmt.Sprint(v)
	}
	panic(fmt.Sprintf("literal: unsupported %T", v))
}
