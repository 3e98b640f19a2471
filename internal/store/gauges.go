package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Operational gauges (the scheduler's gauges job). Each statement must stay
// cheap on a table of tens of millions of rows, as it runs every 30 s: none
// scans the notifications table.

// NotificationCounts returns how many notifications are in each status.
// pending and failed are counted exactly, each through its partial index
// (notifications_pending_due, notifications_failed: only those rows), and
// at most limit of each. delivered and cancelled, most of a large table,
// are estimated from the planner's statistics: the table's row count times
// the status's frequency in the sample of the last ANALYZE (autovacuum's, in
// production), 0 before the table was ever analysed. Every status is in the
// map.
func (s *Store) NotificationCounts(ctx context.Context, limit int) (map[string]int64, error) {
	counts := map[string]int64{"pending": 0, "delivered": 0, "failed": 0, "cancelled": 0}
	rows, err := s.pool.Query(ctx, `
		SELECT s.status, round(c.reltuples * s.freq)::bigint
		FROM pg_class c
		CROSS JOIN LATERAL (
			SELECT unnest(st.most_common_vals::text::text[]) AS status, unnest(st.most_common_freqs) AS freq
			FROM pg_stats st
			WHERE st.schemaname = current_schema() AND st.tablename = 'notifications' AND st.attname = 'status'
		) s
		WHERE c.oid = 'notifications'::regclass AND c.reltuples > 0`)
	if err == nil {
		err = collectCounts(rows, counts)
	}
	if err != nil {
		return nil, fmt.Errorf("notification counts: estimate: %w", err)
	}
	// Both conditions repeat their index's predicate, so the planner can
	// read the partial index alone.
	var pending, failed int64
	err = s.pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM (SELECT 1 FROM notifications WHERE status = 'pending' LIMIT $1) p),
		       (SELECT count(*) FROM (SELECT 1 FROM notifications WHERE status = 'failed' LIMIT $1) f)`,
		limit).Scan(&pending, &failed)
	if err != nil {
		return nil, fmt.Errorf("notification counts: %w", err)
	}
	counts["pending"], counts["failed"] = pending, failed
	return counts, nil
}

// OldestDue returns how long the most overdue pending notification has been
// due (0 when none is due yet): one probe of notifications_pending_due.
func (s *Store) OldestDue(ctx context.Context) (time.Duration, error) {
	var seconds float64
	err := s.pool.QueryRow(ctx, `
		SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at)), 0)::float8
		FROM notifications WHERE status = 'pending' AND next_attempt_at <= now()`).Scan(&seconds)
	if err != nil {
		return 0, fmt.Errorf("oldest due notification: %w", err)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

// ReceiverCounts returns how many receivers are in each state: the health
// states (ReceiverActive, ReceiverFailing, ReceiverDisabled) of those the
// admin has not switched off, and "inactive" for those switched off
// (PATCH active=false), whatever their health. Every state is in the map.
// The receivers table is small (one row per merchant), so it is counted.
func (s *Store) ReceiverCounts(ctx context.Context) (map[string]int64, error) {
	counts := map[string]int64{ReceiverActive: 0, ReceiverFailing: 0, ReceiverDisabled: 0, ReceiverInactive: 0}
	rows, err := s.pool.Query(ctx, `
		SELECT CASE WHEN active THEN status ELSE 'inactive' END, count(*) FROM receivers GROUP BY 1`)
	if err == nil {
		err = collectCounts(rows, counts)
	}
	if err != nil {
		return nil, fmt.Errorf("receiver counts: %w", err)
	}
	return counts, nil
}

// ReceiverInactive is ReceiverCounts' state of receivers the admin switched
// off.
const ReceiverInactive = "inactive"

// collectCounts sets counts[name] for each (name, count) row.
func collectCounts(rows pgx.Rows, counts map[string]int64) error {
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
		counts[name] = n
	}
	return rows.Err()
}
