// Package partition keeps the daily partitions of notifications and
// delivery_attempts: it creates them ahead of time and detaches and drops
// those past retention. Both tables are range-partitioned by the
// notification's creation time (attempts by notification_created_at, a copy
// of it), one partition per UTC day, so a notification and its attempts
// always live in partitions of the same day and leave together.
//
// Used by migration 00010 (the first partitions), by `notifyd migrate` and by
// the scheduler's retention job (internal/scheduler), which holds the job's
// advisory lock while it calls these functions.
package partition

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Day is the partition width. Daily: retention (720 h by default) is kept to
// within a day, a month is ~30 partitions (planning and pruning stay cheap),
// and the daily summary reads exactly one partition.
const Day = 24 * time.Hour

// Ahead is how many days of partitions exist beyond today: the scheduler may
// be down this long before writes start landing in the default partition.
const Ahead = 7

// Tables are the partitioned tables, parents first.
var Tables = []string{"notifications", "delivery_attempts"}

// DB is what the functions need: a *sql.DB or *sql.Conn.
type DB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Name is the partition of table holding day (UTC).
func Name(table string, day time.Time) string {
	return table + "_p" + day.UTC().Format("20060102")
}

// Ensure creates the partitions of both tables for the days from's day
// through Ahead days after now's day that do not exist yet, and returns
// their names. A day already covered by another partition (the legacy
// partition left by migration 00010) is skipped.
func Ensure(ctx context.Context, db DB, from, now time.Time) ([]string, error) {
	var created []string
	last := now.UTC().Truncate(Day).AddDate(0, 0, Ahead)
	for d := from.UTC().Truncate(Day); !d.After(last); d = d.AddDate(0, 0, 1) {
		for _, t := range Tables {
			ok, err := createDay(ctx, db, t, d)
			if err != nil {
				return created, err
			}
			if ok {
				created = append(created, Name(t, d))
			}
		}
	}
	return created, nil
}

// createDay creates table's partition of day d unless it exists or the day
// is covered already (SQLSTATE 42P17: "would overlap partition").
func createDay(ctx context.Context, db DB, table string, d time.Time) (bool, error) {
	name := Name(table, d)
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		return false, fmt.Errorf("partition %s: %w", name, err)
	}
	if exists {
		return false, nil
	}
	_, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
		name, table, d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339)))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P17" {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create partition %s: %w", name, err)
	}
	return true, nil
}

// Partition is one range partition of notifications with its upper bound.
type Partition struct {
	Name  string
	Until time.Time
}

// Expired lists the partitions of notifications whose whole range is before
// cutoff, oldest first. The default partition has no bound and never is.
func Expired(ctx context.Context, db DB, cutoff time.Time) ([]Partition, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT c.relname, b.until FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
			LATERAL (SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS until) b
		WHERE i.inhparent = 'notifications'::regclass AND b.until <= $1
		ORDER BY b.until`, cutoff)
	if err != nil {
		return nil, fmt.Errorf("list expired partitions: %w", err)
	}
	defer rows.Close()
	var out []Partition
	for rows.Next() {
		var p Partition
		if err := rows.Scan(&p.Name, &p.Until); err != nil {
			return nil, fmt.Errorf("list expired partitions: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Attempts is the delivery_attempts partition matching a notifications one.
func Attempts(notificationsPartition string) string {
	return "delivery_attempts" + strings.TrimPrefix(notificationsPartition, "notifications")
}

// HasPending reports whether the partition still holds a pending
// notification (read through its partial index of pending rows).
func HasPending(ctx context.Context, db DB, p Partition) (bool, error) {
	var pending bool
	err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM `+p.Name+` WHERE status = 'pending')`).Scan(&pending)
	if err != nil {
		return false, fmt.Errorf("pending in %s: %w", p.Name, err)
	}
	return pending, nil
}

// Dropped is what Drop removed.
type Dropped struct {
	Notifications, Attempts, Keys int64
}

// Drop detaches and drops the partition p of notifications and its
// attempts partition, and forgets its idempotency keys (notification_keys
// rows, deleted in batches of batch through the detached partition's
// primary key: the key table is the one table retention deletes rows
// from). The row counts are the planner's estimates (reltuples), so that
// dropping costs no scan; a partition never analyzed counts as 0.
//
// The detach takes a brief ACCESS EXCLUSIVE lock on the parent (a
// CONCURRENTLY detach is not allowed while a default partition exists); it
// waits at most lockTimeout for running statements and is retried by the
// next run when it cannot get it. Each step can be re-run, so a run that
// stops half-way is finished by the next one.
func Drop(ctx context.Context, db *sql.DB, p Partition, batch int, lockTimeout time.Duration) (Dropped, error) {
	var d Dropped
	att := Attempts(p.Name)
	for _, pair := range [][2]string{{"delivery_attempts", att}, {"notifications", p.Name}} {
		if err := detach(ctx, db, pair[0], pair[1], lockTimeout); err != nil {
			return d, err
		}
	}
	if err := db.QueryRowContext(ctx, `SELECT
		coalesce((SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass($1)), 0),
		coalesce((SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass($2)), 0)`,
		p.Name, att).Scan(&d.Notifications, &d.Attempts); err != nil {
		return d, fmt.Errorf("size of %s: %w", p.Name, err)
	}
	keys, err := forgetKeys(ctx, db, p.Name, batch)
	d.Keys = keys
	if err != nil {
		return d, err
	}
	if _, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS `+att+`, `+p.Name); err != nil {
		return d, fmt.Errorf("drop %s: %w", p.Name, err)
	}
	return d, nil
}

// detach detaches partition from parent if it is still attached.
func detach(ctx context.Context, db *sql.DB, parent, partition string, lockTimeout time.Duration) error {
	var attached bool
	if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM pg_inherits
		WHERE inhrelid = to_regclass($1) AND inhparent = $2::regclass)`, partition, parent).Scan(&attached); err != nil {
		return fmt.Errorf("detach %s: %w", partition, err)
	}
	if !attached {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("detach %s: %w", partition, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, lockTimeout.Milliseconds())); err != nil {
		return fmt.Errorf("detach %s: %w", partition, err)
	}
	if _, err := tx.ExecContext(ctx, `ALTER TABLE `+parent+` DETACH PARTITION `+partition); err != nil {
		return fmt.Errorf("detach %s: %w", partition, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("detach %s: %w", partition, err)
	}
	return nil
}

// forgetKeys deletes the notification_keys rows of the notifications in the
// detached partition, in batches walking its primary key (created_at, id).
func forgetKeys(ctx context.Context, db *sql.DB, partition string, batch int) (int64, error) {
	var total int64
	afterAt, afterID := time.Time{}, "00000000-0000-0000-0000-000000000000"
	for {
		var n int64
		var lastAt sql.NullTime
		var lastID sql.NullString
		err := db.QueryRowContext(ctx, `
			WITH b AS (SELECT id, created_at FROM `+partition+`
				WHERE (created_at, id) > ($1, $2::uuid) ORDER BY created_at, id LIMIT $3),
			del AS (DELETE FROM notification_keys k USING b WHERE k.id = b.id AND k.created_at = b.created_at RETURNING 1),
			last AS (SELECT created_at, id FROM b ORDER BY created_at DESC, id DESC LIMIT 1)
			SELECT (SELECT count(*) FROM del), (SELECT created_at FROM last), (SELECT id::text FROM last)`,
			afterAt, afterID, batch).Scan(&n, &lastAt, &lastID)
		if err != nil {
			return total, fmt.Errorf("forget keys of %s: %w", partition, err)
		}
		total += n
		if !lastID.Valid {
			return total, nil
		}
		afterAt, afterID = lastAt.Time, lastID.String
	}
}

// DefaultRows counts (up to limit) the rows in the default partitions: a
// write landed there because no partition covered its day (the scheduler did
// not run for Ahead days, or a clock far off). Such rows are kept and
// served, but block the creation of a partition for their day until moved:
// the alert asks an operator to.
func DefaultRows(ctx context.Context, db DB, limit int) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM (SELECT 1 FROM notifications_default LIMIT $1) a) +
		(SELECT count(*) FROM (SELECT 1 FROM delivery_attempts_default LIMIT $1) b)`, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("rows in default partitions: %w", err)
	}
	return n, nil
}
