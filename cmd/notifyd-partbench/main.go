// Command notifyd-partbench measures what partitioning (migration 00010)
// changes, on generated rows: storage per notification, the retention
// job's cost for one day of notifications (time, WAL bytes, dead tuples
// left) before (batched DELETE on the unpartitioned tables) and after (one
// day's partitions dropped), and how long 00010 takes to move an existing
// database per million rows. It creates and drops its own databases
// (partbench_*) on the server of --database-url.
//
//	go run ./cmd/notifyd-partbench --rows 1000000
//
// Rows: notifications spread evenly over 31 days, 97 % delivered at the
// first attempt, 2 % failed after 3 attempts, 1 % pending, each with a
// 200-byte payload: the shape of the bench's query scenario. Postgres here
// runs with autovacuum off: tables are VACUUM ANALYZEd after the load.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/notifyd/notifyd/internal/partition"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/migrations"
)

func main() {
	dbURL := flag.String("database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "server to create the databases on")
	rows := flag.Int("rows", 1_000_000, "notifications to generate")
	keep := flag.Bool("keep", false, "keep the databases")
	flag.Parse()
	if err := run(context.Background(), *dbURL, *rows, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "notifyd-partbench:", err)
		os.Exit(1)
	}
}

const days = 31

func run(ctx context.Context, server string, rows int, keep bool) error {
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	names := []string{"partbench_before", "partbench_move", "partbench_after"}
	for _, n := range names {
		if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+n+` WITH (FORCE)`); err != nil {
			return err
		}
		if !keep {
			defer admin.Exec(context.Background(), `DROP DATABASE IF EXISTS `+n+` WITH (FORCE)`)
		}
	}
	fmt.Printf("rows: %d notifications over %d days\n", rows, days)

	// Before: the unpartitioned layout (migrations up to 00009).
	if _, err := admin.Exec(ctx, `CREATE DATABASE partbench_before`); err != nil {
		return err
	}
	before := with(server, "partbench_before")
	if err := upTo(ctx, before, 9); err != nil {
		return err
	}
	if err := fill(ctx, before, rows, false); err != nil {
		return err
	}
	if err := storage(ctx, before, rows, "before", []string{"notifications", "delivery_attempts"}); err != nil {
		return err
	}
	// The move: a copy of the before database, migrated.
	if _, err := admin.Exec(ctx, `CREATE DATABASE partbench_move TEMPLATE partbench_before`); err != nil {
		return err
	}
	start := time.Now()
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := migrations.Up(ctx, with(server, "partbench_move"), logger); err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("move (00010): %.1f s for %d notifications: %.1f s per million\n", took.Seconds(), rows, took.Seconds()/float64(rows)*1e6)

	if err := retentionBefore(ctx, before); err != nil {
		return err
	}

	// After: a database that was partitioned from the start.
	if _, err := admin.Exec(ctx, `CREATE DATABASE partbench_after`); err != nil {
		return err
	}
	after := with(server, "partbench_after")
	if err := migrations.UpQuiet(ctx, after); err != nil {
		return err
	}
	if err := fill(ctx, after, rows, true); err != nil {
		return err
	}
	if err := storage(ctx, after, rows, "after", []string{"notifications", "delivery_attempts", "notification_keys"}); err != nil {
		return err
	}
	return retentionAfter(ctx, after)
}

func with(server, name string) string {
	u, _ := url.Parse(server)
	u.Path = "/" + name
	return u.String()
}

func upTo(ctx context.Context, dbURL string, version int64) error {
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := migrations.NewProvider(db)
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}

// fill generates the rows with INSERT … SELECT (through the partitioned
// parent and its claim trigger when partitioned), then VACUUM ANALYZE.
func fill(ctx context.Context, dbURL string, rows int, partitioned bool) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	start := time.Now()
	if partitioned {
		db, err := sql.Open("pgx", dbURL)
		if err != nil {
			return err
		}
		_, err = partition.Ensure(ctx, db, time.Now().AddDate(0, 0, -days), time.Now())
		db.Close()
		if err != nil {
			return err
		}
	}
	nca, ncaCol := "", ""
	if partitioned {
		nca, ncaCol = ", created_at", ", notification_created_at"
	}
	stmts := []string{
		`INSERT INTO receivers (id, name, callback_url, signing_secret)
		 SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(r), 12, '0'))::uuid, 'r' || r, 'https://example.com/cb', 'whsec_x'
		 FROM generate_series(1, 100) r`,
		fmt.Sprintf(`CREATE TEMP TABLE g AS
		 SELECT gen_random_uuid() AS id, ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i %% 100), 12, '0'))::uuid AS receiver_id,
		        'order-' || i AS key, i %% 100 AS kind,
		        now() - interval '%d days' + i * (interval '%d days' / %d) AS created_at
		 FROM generate_series(1, %d) i`, days, days, rows, rows),
		`INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, status, attempts, max_attempts,
		   created_at, next_attempt_at, last_attempt_at, delivered_at, last_status_code, last_error)
		 SELECT id, receiver_id, 'payment.succeeded', key, convert_to(repeat('x', 200), 'UTF8'),
		   (CASE WHEN kind < 97 THEN 'delivered' WHEN kind < 99 THEN 'failed' ELSE 'pending' END)::notification_status,
		   CASE WHEN kind < 97 THEN 1 WHEN kind < 99 THEN 3 ELSE 1 END, 12, created_at,
		   CASE WHEN kind >= 99 THEN now() + interval '1 hour' END, created_at, CASE WHEN kind < 97 THEN created_at END,
		   CASE WHEN kind < 97 THEN 200 ELSE 500 END, CASE WHEN kind >= 97 THEN 'HTTP 500' END
		 FROM g ORDER BY created_at`,
		`INSERT INTO delivery_attempts (notification_id, attempt_no, started_at, duration_ms, status_code, outcome, error, response_body` + ncaCol + `)
		 SELECT id, a, created_at, 5, CASE WHEN kind < 97 THEN 200 ELSE 500 END,
		   (CASE WHEN kind < 97 THEN 'success' ELSE 'failure' END)::attempt_outcome,
		   CASE WHEN kind >= 97 THEN 'HTTP 500' END, 'ok'` + nca + `
		 FROM g, generate_series(1, CASE WHEN kind BETWEEN 97 AND 98 THEN 3 ELSE 1 END) a ORDER BY created_at`,
		`VACUUM ANALYZE`,
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
	}
	fmt.Printf("fill (partitioned=%v): %.1f s\n", partitioned, time.Since(start).Seconds())
	return nil
}

// storage prints the bytes per notification of tables (heap, TOAST and
// indexes; partitions included).
func storage(ctx context.Context, dbURL string, rows int, label string, tables []string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var total int64
	for _, t := range tables {
		var b int64
		if err := conn.QueryRow(ctx, `SELECT CASE WHEN relkind = 'p'
			THEN (SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree($1::regclass) WHERE isleaf)
			ELSE pg_total_relation_size($1::regclass) END::int8 FROM pg_class WHERE oid = $1::regclass`, t).Scan(&b); err != nil {
			return err
		}
		fmt.Printf("storage %s: %s %.0f bytes per notification\n", label, t, float64(b)/float64(rows))
		total += b
	}
	fmt.Printf("storage %s: total %.0f bytes per notification\n", label, float64(total)/float64(rows))
	return nil
}

// cost runs work and prints its time, the WAL it wrote and the dead tuples
// it left in the tables.
func cost(ctx context.Context, dbURL, label string, work func(*store.Store) (int64, error)) error {
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	var lsn0 string
	if err := st.Pool().QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn0); err != nil {
		return err
	}
	start := time.Now()
	n, err := work(st)
	if err != nil {
		return err
	}
	took := time.Since(start)
	var wal, dead int64
	if _, err := st.Pool().Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		return err
	}
	time.Sleep(600 * time.Millisecond) // the stats collector's flush
	if err := st.Pool().QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::int8,
		(SELECT coalesce(sum(n_dead_tup), 0)::int8 FROM pg_stat_user_tables
		 WHERE relname LIKE 'notification%' OR relname LIKE 'delivery_attempts%')`, lsn0).Scan(&wal, &dead); err != nil {
		return err
	}
	fmt.Printf("retention %s: one day (%d notifications) in %.2f s, WAL %.1f MB, %d dead tuples left\n",
		label, n, took.Seconds(), float64(wal)/1e6, dead)
	return nil
}

// retentionBefore: the oldest day, deleted as retention did before
// partitioning (batches of 5,000, the default).
func retentionBefore(ctx context.Context, dbURL string) error {
	// The partial first day goes first, unmeasured: one whole day is timed.
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, `DELETE FROM delivery_attempts WHERE notification_id IN (SELECT id FROM notifications WHERE created_at < $1)`,
		oldestDayEnd().AddDate(0, 0, -1))
	if err == nil {
		_, err = conn.Exec(ctx, `DELETE FROM notifications WHERE created_at < $1`, oldestDayEnd().AddDate(0, 0, -1))
	}
	if err == nil {
		_, err = conn.Exec(ctx, `VACUUM ANALYZE`)
	}
	conn.Close(ctx)
	if err != nil {
		return err
	}
	return cost(ctx, dbURL, "before (batched DELETE)", func(st *store.Store) (int64, error) {
		cutoff := oldestDayEnd()
		var total int64
		for {
			// The pre-partitioning statement (store.DeleteExpired now
			// reads the legacy partition).
			var n int64
			err := st.Pool().QueryRow(ctx, `
				WITH victims AS (
					SELECT id FROM notifications WHERE created_at < $1 AND status <> 'pending' LIMIT $2 FOR UPDATE SKIP LOCKED
				), att AS (DELETE FROM delivery_attempts WHERE notification_id IN (SELECT id FROM victims))
				, del AS (DELETE FROM notifications WHERE id IN (SELECT id FROM victims) RETURNING 1)
				SELECT count(*) FROM del`, cutoff, 5000).Scan(&n)
			if err != nil {
				return total, err
			}
			if total += n; n < 5000 {
				return total, nil
			}
		}
	})
}

// retentionAfter: the oldest whole day's partitions dropped (the pending
// notifications of that day made terminal first: the job holds a
// partition with pending rows).
func retentionAfter(ctx context.Context, dbURL string) error {
	day := oldestDayEnd().AddDate(0, 0, -1)
	p := partition.Partition{Name: partition.Name("notifications", day), Until: day.AddDate(0, 0, 1)}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE `+p.Name+` SET status = 'failed', next_attempt_at = NULL WHERE status = 'pending'`); err != nil {
		return err
	}
	if _, err := st.Pool().Exec(ctx, `VACUUM ANALYZE `+p.Name); err != nil {
		return err
	}
	st.Close()
	return cost(ctx, dbURL, "after (drop partitions)", func(st *store.Store) (int64, error) {
		d, err := st.DropPartition(ctx, p, 5000, 5*time.Second)
		return d.Notifications, err
	})
}

// oldestDayEnd is the end of the first whole UTC day of the generated rows.
func oldestDayEnd() time.Time {
	return time.Now().UTC().AddDate(0, 0, -days+1).Truncate(partition.Day).AddDate(0, 0, 1)
}
