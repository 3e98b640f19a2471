package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/notifyd/notifyd/internal/partition"
)

// Migration 00010 moves notifications and delivery_attempts to daily range
// partitions (internal/partition). It is Go, not SQL, because it cannot run
// in one transaction: unique indexes are built CONCURRENTLY and the
// attempts' new column is filled in batches, each committed, while the
// previous version keeps writing. Every step checks what is done already,
// so a run that stops half-way (crash, deploy timeout) resumes where it was
// when `notifyd migrate` runs again; goose records 00010 only at the end.
//
//  1. prepare.sql: the key table, the cut, the attempts' column, and triggers
//     that keep both current with the old version's writes;
//  2. batches: fill notification_keys and delivery_attempts.
//     notification_created_at (keyset over the primary keys);
//  3. unique indexes including the partition key, CONCURRENTLY;
//  4. range checks added NOT VALID and validated (neither blocks writes);
//  5. swap.sql and the attach, in one transaction under a short ACCESS
//     EXCLUSIVE lock: the old tables become the partition of everything
//     before the cut, without a scan or a copy; the daily partitions follow.
//
// The old partition leaves whole once its range is past retention, like any
// other (until then retention runs there as it ran before: see
// internal/scheduler/retention.go).
func partitionMigration() *goose.Migration {
	return goose.NewGoMigration(10,
		&goose.GoFunc{RunDB: partitionUp},
		&goose.GoFunc{RunDB: partitionDown})
}

// MoveBatch is the number of rows each committed batch of step 2 touches.
var MoveBatch = 20000

// moveLogger reports the steps of 00010 (set by Up).
var moveLogger = discard

func partitionUp(ctx context.Context, db *sql.DB) error {
	var done bool
	if err := db.QueryRowContext(ctx, `SELECT relkind = 'p' FROM pg_class WHERE oid = 'notifications'::regclass`).Scan(&done); err != nil {
		return fmt.Errorf("00010: %w", err)
	}
	if done {
		return nil
	}
	steps := []struct {
		name string
		run  func(context.Context, *sql.DB) error
	}{
		{"prepare", execFile("partitioning/prepare.sql")},
		{"fill notification_keys", fillKeys},
		{"fill delivery_attempts.notification_created_at", fillAttemptKeys},
		{"unique indexes", uniqueIndexes},
		{"range checks", rangeChecks},
		{"swap", swap},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.run(ctx, db); err != nil {
			return fmt.Errorf("00010 %s: %w", s.name, err)
		}
		moveLogger.Info("partition migration step", "step", s.name, "duration", time.Since(start))
	}
	return nil
}

func execFile(name string) func(context.Context, *sql.DB) error {
	return func(ctx context.Context, db *sql.DB) error {
		b, err := Files.ReadFile(name)
		if err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, string(b))
		return err
	}
}

// fillKeys copies (id, created_at) of every notification into
// notification_keys, a batch per transaction, walking the old primary key.
func fillKeys(ctx context.Context, db *sql.DB) error {
	return inBatches(ctx, db, `
		WITH b AS (SELECT id, created_at FROM notifications WHERE id > $1::uuid ORDER BY id LIMIT $2),
		ins AS (INSERT INTO notification_keys SELECT id, created_at FROM b ON CONFLICT DO NOTHING)
		SELECT (SELECT id FROM b ORDER BY id DESC LIMIT 1)::text`)
}

// fillAttemptKeys sets notification_created_at on the attempts that lack it,
// a batch of notifications per transaction (attempts are keyed by their
// notification first, so a batch is one index range).
func fillAttemptKeys(ctx context.Context, db *sql.DB) error {
	return inBatches(ctx, db, `
		WITH b AS (SELECT id, created_at FROM notifications WHERE id > $1::uuid ORDER BY id LIMIT $2),
		upd AS (UPDATE delivery_attempts a SET notification_created_at = b.created_at FROM b
			WHERE a.notification_id = b.id AND a.notification_created_at IS NULL)
		SELECT (SELECT id FROM b ORDER BY id DESC LIMIT 1)::text`)
}

// inBatches runs query ($1: the last id done, $2: MoveBatch) until it
// returns NULL, each run its own transaction.
func inBatches(ctx context.Context, db *sql.DB, query string) error {
	after := "00000000-0000-0000-0000-000000000000"
	for {
		var last sql.NullString
		if err := db.QueryRowContext(ctx, query, after, MoveBatch).Scan(&last); err != nil {
			return err
		}
		if !last.Valid {
			return nil
		}
		after = last.String
	}
}

// uniqueIndexes builds the old tables' new primary keys, which include the
// partition key, without blocking writes. A CONCURRENTLY build that failed
// leaves an invalid index: it is dropped and built again.
func uniqueIndexes(ctx context.Context, db *sql.DB) error {
	for _, ix := range []struct{ name, def string }{
		{"notifications_legacy_key", "notifications (created_at, id)"},
		{"delivery_attempts_legacy_key", "delivery_attempts (notification_id, attempt_no, notification_created_at)"},
	} {
		var valid sql.NullBool
		if err := db.QueryRowContext(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)`, ix.name).Scan(&valid); err != nil && err != sql.ErrNoRows {
			return err
		}
		if valid.Valid && valid.Bool {
			continue
		}
		if valid.Valid {
			if _, err := db.ExecContext(ctx, `DROP INDEX CONCURRENTLY `+ix.name); err != nil {
				return err
			}
		}
		if _, err := db.ExecContext(ctx, `CREATE UNIQUE INDEX CONCURRENTLY `+ix.name+` ON `+ix.def); err != nil {
			return err
		}
	}
	return nil
}

// rangeChecks adds the checks that prove the old rows all belong before the
// cut, so the attach needs no scan under its lock. NOT VALID then VALIDATE:
// the validation scans with a lock that lets writes through.
func rangeChecks(ctx context.Context, db *sql.DB) error {
	for _, c := range []struct{ table, name, expr string }{
		{"notifications", "notifications_legacy_range", "created_at < %s"},
		{"delivery_attempts", "delivery_attempts_legacy_range", "notification_created_at IS NOT NULL AND notification_created_at < %s"},
	} {
		_, err := db.ExecContext(ctx, fmt.Sprintf(`DO $$ BEGIN
			IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = '%s') THEN
				EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID',
					(SELECT quote_literal(cut) FROM partition_migration));
			END IF; END $$`, c.name, c.table, c.name, c.expr))
		if err != nil {
			return err
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+c.table+` VALIDATE CONSTRAINT `+c.name); err != nil {
			return err
		}
	}
	return nil
}

// swap makes the partitioned tables in one transaction: swap.sql, then the
// old tables attached as the partition before the cut (dropped instead when
// empty: a new database), the default partitions and the daily ones.
func swap(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	b, err := Files.ReadFile("partitioning/swap.sql")
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(b)); err != nil {
		return err
	}
	var cut, now time.Time
	var empty bool
	if err := tx.QueryRowContext(ctx, `SELECT cut, now(), NOT EXISTS (SELECT FROM notifications_legacy)
		AND NOT EXISTS (SELECT FROM delivery_attempts_legacy) FROM partition_migration`).Scan(&cut, &now, &empty); err != nil {
		return err
	}
	from := cut
	if empty {
		from = now
		_, err = tx.ExecContext(ctx, `DROP TABLE delivery_attempts_legacy, notifications_legacy`)
	} else {
		_, err = tx.ExecContext(ctx, fmt.Sprintf(`
			ALTER TABLE notifications ATTACH PARTITION notifications_legacy FOR VALUES FROM (MINVALUE) TO ('%[1]s');
			ALTER TABLE delivery_attempts ATTACH PARTITION delivery_attempts_legacy FOR VALUES FROM (MINVALUE) TO ('%[1]s')`,
			cut.UTC().Format(time.RFC3339)))
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `
		CREATE TABLE notifications_default PARTITION OF notifications DEFAULT;
		CREATE TABLE delivery_attempts_default PARTITION OF delivery_attempts DEFAULT;
		DROP TABLE partition_migration`); err != nil {
		return err
	}
	if _, err := partition.Ensure(ctx, tx, from, now); err != nil {
		return err
	}
	return tx.Commit()
}

// partitionDown puts the rows back into unpartitioned tables (a copy, in one
// transaction: for rolling back a test or a fresh install, not a large
// database).
func partitionDown(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, downSQL)
	return err
}

const downSQL = `
BEGIN;
ALTER TABLE notifications RENAME TO notifications_part;
ALTER TABLE delivery_attempts RENAME TO delivery_attempts_part;
ALTER INDEX notifications_receiver_created RENAME TO notifications_part_receiver_created;
ALTER INDEX notifications_pending_due RENAME TO notifications_part_pending_due;
ALTER INDEX notifications_failed RENAME TO notifications_part_failed;
ALTER INDEX notifications_pkey RENAME TO notifications_part_pkey;
ALTER INDEX delivery_attempts_pkey RENAME TO delivery_attempts_part_pkey;
CREATE TABLE notifications (LIKE notifications_part INCLUDING DEFAULTS, PRIMARY KEY (id));
ALTER TABLE notifications ADD FOREIGN KEY (receiver_id) REFERENCES receivers (id);
INSERT INTO notifications SELECT * FROM notifications_part;
CREATE INDEX notifications_receiver_created ON notifications (receiver_id, created_at, id);
CREATE INDEX notifications_pending_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_failed ON notifications (receiver_id, created_at, id) WHERE status = 'failed';
CREATE INDEX notifications_created ON notifications (created_at, id);
CREATE TABLE delivery_attempts (LIKE delivery_attempts_part, PRIMARY KEY (notification_id, attempt_no));
ALTER TABLE delivery_attempts ADD FOREIGN KEY (notification_id) REFERENCES notifications (id) ON DELETE CASCADE;
INSERT INTO delivery_attempts SELECT * FROM delivery_attempts_part ON CONFLICT DO NOTHING;
ALTER TABLE delivery_attempts DROP COLUMN notification_created_at;
DROP TABLE delivery_attempts_part, notifications_part, notification_keys;
DROP FUNCTION notifyd_claim_key(), notifyd_release_key(), notifyd_rekey();
COMMIT;`

// logMoves sets the logger of 00010's steps.
func logMoves(logger *slog.Logger) { moveLogger = logger }
