// Package once makes a receiver's handling of notifyd's notifications take
// effect once, although notifyd delivers them at least once (a retry after a
// lost answer, a manual redelivery, `notifyctl reconcile` finding what a
// callback already brought).
//
// The receiver keeps a de-duplication table in its own database and records
// each notification id in it in the same transaction as its business
// change: the record and the change commit together or roll back together,
// so a notification delivered twice changes the business once.
//
//	pool, _ := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	v, _ := webhook.NewVerifier(os.Getenv("NOTIFYD_SIGNING_SECRET"))
//	http.Handle("/notifyd", once.PgxHandler(v, pool, func(ctx context.Context, tx pgx.Tx, e *webhook.Event) error {
//		_, err := tx.Exec(ctx, `UPDATE orders SET paid = true WHERE id = $1`, orderID(e.Data))
//		return err // an error rolls everything back and answers 500: notifyd retries
//	}))
//
// The table is created by the DDL of Table.Schema (also printed by
// `notifyctl receiver-schema`), and trimmed by Table.CleanupPgx or
// CleanupSQL from a daily job. SQLHandler and RecordSQL do the same for
// database/sql. The SQL is PostgreSQL's.
//
// The key is the notification id (Event.ID, the webhook-id header), which
// is the same on every delivery of one notification, whether pushed,
// redelivered or reconciled. The producer's idempotency key is not: a
// producer that sends the same key to two receivers makes two
// notifications, and each receiver must process its own.
package once

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// DefaultTable is the de-duplication table's name unless NewTable names
// another.
const DefaultTable = "notifyd_received"

// DefaultKeep is how long ids are kept by a cleanup that is not told
// otherwise: notifyd's default retention (NOTIFYD_RETENTION, 30 days) plus
// a margin. Within its retention a notification can still be redelivered
// or reconciled, so an id must be kept at least that long; keep it longer
// if your notifyd keeps notifications longer.
const DefaultKeep = 35 * 24 * time.Hour

// cleanupBatch bounds one DELETE, so a cleanup after months of backlog holds
// no long lock and writes no huge transaction.
const cleanupBatch = 1000

// ErrNoID reports an empty notification id.
var ErrNoID = errors.New("once: empty notification id")

// Table is a de-duplication table. The zero Table is DefaultTable.
type Table struct{ name string }

// Default is the table named DefaultTable.
var Default = Table{}

// identifier is a plain, optionally schema-qualified SQL name: the table
// name is spliced into SQL, so nothing that needs quoting is accepted.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// NewTable names the table ("notifyd_received", "billing.notifyd_seen").
func NewTable(name string) (Table, error) {
	if !identifier.MatchString(name) {
		return Table{}, fmt.Errorf("once: table name %q must be [schema.]name of letters, digits and _", name)
	}
	return Table{name: name}, nil
}

// Name is the table's name as used in SQL.
func (t Table) Name() string {
	if t.name == "" {
		return DefaultTable
	}
	return t.name
}

// Schema is the table's DDL for PostgreSQL. It is idempotent (IF NOT
// EXISTS), so it can run at every start of the receiver.
func (t Table) Schema() string {
	name := t.Name()
	base := name[strings.LastIndexByte(name, '.')+1:]
	return fmt.Sprintf(`-- notifyd's de-duplication table: one row per notification processed. A
-- handler inserts the notification id in the same transaction as its
-- business change; a second delivery of the id finds the row and changes
-- nothing. Keep rows at least as long as notifyd keeps notifications
-- (NOTIFYD_RETENTION, 30 days by default): until then it may redeliver them.
CREATE TABLE IF NOT EXISTS %[1]s (
    notification_id text PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS %[2]s_received_at ON %[1]s (received_at);
-- Cleanup, daily (Go receivers: once.CleanupPgx / CleanupSQL do it in batches):
--   DELETE FROM %[1]s WHERE received_at < now() - interval '%[3]d days';
`, name, base, int(DefaultKeep/(24*time.Hour)))
}

func (t Table) insertSQL() string {
	return "INSERT INTO " + t.Name() + " (notification_id) VALUES ($1) ON CONFLICT (notification_id) DO NOTHING"
}

func (t Table) cleanupSQL() string {
	n := t.Name()
	return "DELETE FROM " + n + " WHERE notification_id IN (SELECT notification_id FROM " + n +
		" WHERE received_at < $1 LIMIT " + fmt.Sprint(cleanupBatch) + ")"
}

// record inserts id through exec and reports whether it is new. Under
// READ COMMITTED a concurrent transaction holding the same id makes the
// insert wait for it: if it commits, this is a duplicate; if it rolls
// back, this one is first. So concurrent deliveries serialise on the id
// and only one of them ever reaches the business function.
func (t Table) record(ctx context.Context, exec func(ctx context.Context, sql string, args ...any) (int64, error), id string) (bool, error) {
	if id == "" {
		return false, ErrNoID
	}
	n, err := exec(ctx, t.insertSQL(), id)
	if err != nil {
		return false, fmt.Errorf("once: record notification %s in %s: %w", id, t.Name(), err)
	}
	return n == 1, nil
}

// cleanup deletes, batch by batch, the ids recorded before now − keep.
func (t Table) cleanup(ctx context.Context, exec func(ctx context.Context, sql string, args ...any) (int64, error), keep time.Duration) (int64, error) {
	if keep <= 0 {
		return 0, fmt.Errorf("once: keep must be positive, got %s", keep)
	}
	cutoff := time.Now().Add(-keep)
	var total int64
	for {
		n, err := exec(ctx, t.cleanupSQL(), cutoff)
		total += n
		if err != nil {
			return total, fmt.Errorf("once: clean up %s: %w", t.Name(), err)
		}
		if n < cleanupBatch {
			return total, nil
		}
	}
}
