package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notifyd/notifyd/internal/partition"
)

// notifications and delivery_attempts are partitioned by the notification's
// creation time, a partition per UTC day (migration 00010,
// internal/partition). A statement prunes partitions only if it names that
// time; one that knows only ids takes it from notification_keys (one row
// per id, its primary key the id: the index that keeps a business key
// unique across partitions). Postgres then skips every other partition at
// run time ("never executed" in EXPLAIN ANALYZE; TestPartitionPruning).

// createdAtOf is the partition key of the notification whose id is the SQL
// expression id: a sub-select evaluated once, before the partitions are
// chosen.
func createdAtOf(id string) string {
	return "(SELECT created_at FROM notification_keys WHERE id = " + id + ")"
}

// keyedNotifications is a FROM item and the start of a WHERE clause (the
// caller may go on with AND): the notifications whose ids are in the uuid[]
// expression ids, n their rows, each looked up in its own partition. Each
// distinct id is a probe of notification_keys' primary key, then of its
// partition's (OFFSET 0 keeps each lateral sub-select a parameterised scan:
// pruned per id, and not a join the planner may turn into a hash join). A
// join on k.id = ANY(ids) instead was planned as a sequential scan of the
// whole key table, comparing every row with every id, while the table held
// tens of thousands of rows (TestHotStatementsStayIndexScansAfterTheTableGrows).
func keyedNotifications(ids string) string {
	return `(SELECT DISTINCT q.id FROM unnest(` + ids + `::uuid[]) q(id)) q
		CROSS JOIN LATERAL (SELECT k.id, k.created_at FROM notification_keys k WHERE k.id = q.id OFFSET 0) k
		CROSS JOIN LATERAL (SELECT * FROM notifications n
		WHERE n.id = k.id AND n.created_at = k.created_at OFFSET 0) n WHERE true`
}

// The partition maintenance of the retention job (internal/partition does
// the work; these bind it to the pool, and to the database clock).

func (s *Store) sqlDB() *sql.DB { return stdlib.OpenDBFromPool(s.pool) }

// EnsurePartitions creates the daily partitions from today through
// partition.Ahead days ahead that are missing, and returns their names.
func (s *Store) EnsurePartitions(ctx context.Context) ([]string, error) {
	now, err := s.Now(ctx)
	if err != nil {
		return nil, err
	}
	db := s.sqlDB()
	defer db.Close()
	return partition.Ensure(ctx, db, now, now)
}

// ExpiredPartitions lists the partitions whose whole day is before cutoff.
func (s *Store) ExpiredPartitions(ctx context.Context, cutoff time.Time) ([]partition.Partition, error) {
	db := s.sqlDB()
	defer db.Close()
	return partition.Expired(ctx, db, cutoff)
}

// PartitionHasPending reports whether p still holds a pending notification.
func (s *Store) PartitionHasPending(ctx context.Context, p partition.Partition) (bool, error) {
	db := s.sqlDB()
	defer db.Close()
	return partition.HasPending(ctx, db, p)
}

// DropPartition detaches and drops p and its attempts (see partition.Drop).
func (s *Store) DropPartition(ctx context.Context, p partition.Partition, batch int, lockTimeout time.Duration) (partition.Dropped, error) {
	db := s.sqlDB()
	defer db.Close()
	return partition.Drop(ctx, db, p, batch, lockTimeout)
}

// DefaultPartitionRows counts, up to limit, the rows in the default
// partitions (there should be none).
func (s *Store) DefaultPartitionRows(ctx context.Context, limit int) (int64, error) {
	db := s.sqlDB()
	defer db.Close()
	return partition.DefaultRows(ctx, db, limit)
}

// HasLegacyPartition reports whether the pre-partitioning table, attached
// by migration 00010 as the partition before its cut, is still there.
func (s *Store) HasLegacyPartition(ctx context.Context) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass('notifications_legacy') IS NOT NULL`).Scan(&ok); err != nil {
		return false, fmt.Errorf("legacy partition: %w", err)
	}
	return ok, nil
}
