package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notifyd/notifyd/internal/partition"
	"github.com/notifyd/notifyd/internal/testenv"
)

// TestPartitionPruning runs the statements that know only notification ids
// (the query API's look-ups, the worker's batched state look-up, the
// cancel) with EXPLAIN ANALYZE over five days of partitions holding rows,
// and checks that each read only the partitions of the ids it was given
// (the others "never executed": run-time pruning through notification_keys),
// through an index. A time-window listing must prune at plan time.
func TestPartitionPruning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := testenv.Pool(t)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	today := time.Now().UTC().Truncate(partition.Day)
	if _, err := partition.Ensure(ctx, db, today.AddDate(0, 0, -4), time.Now()); err != nil {
		t.Fatal(err)
	}
	r := uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO receivers (id, name, callback_url, signing_secret)
		VALUES ($1, 'r', 'https://example.com/cb', 'whsec_x')`, r); err != nil {
		t.Fatal(err)
	}
	_, err := pool.Exec(ctx, `
		WITH n AS (
			INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, max_attempts, created_at)
			SELECT gen_random_uuid(), $1, 't', 'k' || d || '-' || i, '{}', 3,
				$2::timestamptz - d * interval '1 day' + i * interval '1 minute'
			FROM generate_series(0, 4) d, generate_series(1, 300) i
			RETURNING id, created_at
		)
		INSERT INTO delivery_attempts (notification_id, attempt_no, started_at, duration_ms, status_code, outcome, notification_created_at)
		SELECT id, a, created_at, 10, 500, 'failure', created_at FROM n, generate_series(1, 2) a`, r, today)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE notifications; ANALYZE delivery_attempts; ANALYZE notification_keys`); err != nil {
		t.Fatal(err)
	}
	ids := func(keys ...string) (out []uuid.UUID) {
		for _, k := range keys {
			var id uuid.UUID
			if err := pool.QueryRow(ctx, `SELECT id FROM notifications WHERE receiver_id = $1 AND idempotency_key = $2`, r, k).Scan(&id); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		return out
	}
	one := ids("k2-7")[0]
	// The listing's key filter derives the id from (receiver, key) as the
	// ingest does; these rows' ids are random, so it is given one's.
	keyListing, keyArgs := listQuery(ListFilter{ReceiverID: &r, IdempotencyKey: "k2-7", Limit: 10})
	keyArgs[1] = pgID(one)
	three := ids("k1-1", "k3-2", "k3-9")
	day := func(d int) string { return partition.Name("notifications", today.AddDate(0, 0, -d)) }
	cases := []struct {
		name  string
		query string
		args  []any
		want  []string // partitions of notifications (and of attempts, by day) that may run
	}{
		{"get by id", getNotificationSQL, []any{one}, []string{day(2)}},
		{"attempts by id", attemptsQuery, []any{one}, []string{day(2)}},
		{"by key", byKeyQuery, []any{one, r, "k2-7"}, []string{day(2)}},
		{"listing by key", keyListing, keyArgs, []string{day(2)}},
		{"worker's batched states", deliveryStatesSQL, []any{three}, []string{day(1), day(3)}},
		{"cancel", cancelSQL, []any{one}, []string{day(2)}},
	}
	for _, c := range cases {
		ran := explainAnalyze(t, pool, c.query, c.args...)
		if len(ran) == 0 {
			t.Errorf("%s read no partition", c.name)
		}
		for rel, node := range ran {
			day := "notifications" + strings.TrimPrefix(strings.TrimPrefix(rel, "delivery_attempts"), "notifications")
			if !contains(c.want, day) {
				t.Errorf("%s read partition %s (want only %v)", c.name, rel, c.want)
			}
			if !strings.Contains(node, "Index") {
				t.Errorf("%s read %s with %s", c.name, rel, node)
			}
		}
	}
	// A receiver's listing of one day's window is planned on that day's
	// partition alone.
	q, args := listQuery(ListFilter{ReceiverID: &r, CreatedAfter: ptr(today.AddDate(0, 0, -2).Add(time.Hour)),
		CreatedBefore: ptr(today.AddDate(0, 0, -2).Add(2 * time.Hour)), Limit: 50})
	ran := explainAnalyze(t, pool, q, args...)
	for rel := range ran {
		if rel != day(2) {
			t.Errorf("one day's listing read %s", rel)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// explainAnalyze runs query under EXPLAIN ANALYZE in a transaction it rolls
// back, and returns the partitions of notifications and delivery_attempts
// whose scan ran at least once, with the scan's node type.
func explainAnalyze(t *testing.T, pool interface {
	Begin(context.Context) (pgx.Tx, error)
}, query string, args ...any) map[string]string {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var raw []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+query, args...).Scan(&raw); err != nil {
		t.Fatalf("explain %s: %v", query, err)
	}
	var doc []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc) != 1 {
		t.Fatalf("plan %s: %v", raw, err)
	}
	ran := map[string]string{}
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		rel, _ := n["Relation Name"].(string)
		loops, _ := n["Actual Loops"].(float64)
		kind, _ := n["Node Type"].(string)
		if loops > 0 && (strings.HasPrefix(rel, "notifications_") || strings.HasPrefix(rel, "delivery_attempts_")) {
			ran[rel] = fmt.Sprint(kind)
		}
		if kids, ok := n["Plans"].([]any); ok {
			for _, k := range kids {
				if m, ok := k.(map[string]any); ok {
					walk(m)
				}
			}
		}
	}
	walk(doc[0].Plan)
	return ran
}
