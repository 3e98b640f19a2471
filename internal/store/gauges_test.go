package store_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testenv"
)

// TestGaugeCounts: the operational gauges read exact pending and failed
// counts (capped), estimate delivered and cancelled from the statistics of
// the last ANALYZE (none before it), find the most overdue pending
// notification, and count receivers by state; none of them scans the
// notifications table, which holds 20,000 rows here.
func TestGaugeCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Database(t)
	s := openOneConn(t, dsn, "")
	r := newReceiver(t, s)
	off := newReceiver(t, s)
	if _, err := s.Pool().Exec(ctx, `UPDATE receivers SET active = false WHERE id = $1`, off.ID); err != nil {
		t.Fatal(err)
	}
	// 20,000 delivered; 3 pending due 10 minutes ago and 4 due in an hour;
	// 5 failed; 2 cancelled.
	_, err := s.Pool().Exec(ctx, `
		INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, max_attempts, status, next_attempt_at)
		SELECT gen_random_uuid(), $1, 't', 'k' || i, '{}', 3,
			(CASE WHEN i <= 7 THEN 'pending' WHEN i <= 12 THEN 'failed' WHEN i <= 14 THEN 'cancelled' ELSE 'delivered' END)::notification_status,
			CASE WHEN i <= 3 THEN now() - interval '10 minutes' WHEN i <= 7 THEN now() + interval '1 hour' END
		FROM generate_series(1, 20014) i`, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Analysed so that the planner knows the table is large, as in
	// production; the first case drops the status statistics again.
	if _, err := s.Pool().Exec(ctx, `ANALYZE notifications`); err != nil {
		t.Fatal(err)
	}
	before := tableScans(t, s.Pool(), "notifications")

	cases := []struct {
		name  string
		limit int
		want  map[string]int64
	}{
		{"analysed", 1_000_000, map[string]int64{"pending": 7, "failed": 5, "delivered": 20000, "cancelled": 2}},
		{"exact counts capped", 4, map[string]int64{"pending": 4, "failed": 4, "delivered": 20000, "cancelled": 2}},
	}
	for _, tc := range cases {
		got, err := s.NotificationCounts(ctx, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, tc.want) {
			t.Errorf("%s: counts %v, want %v", tc.name, got, tc.want)
		}
	}
	due, err := s.OldestDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if due < 10*time.Minute || due > 15*time.Minute {
		t.Errorf("oldest due %s, want about 10 minutes (the future ones do not count)", due)
	}
	if after := tableScans(t, s.Pool(), "notifications"); after.seq != before.seq {
		t.Errorf("the gauge statements scanned notifications sequentially %d times", after.seq-before.seq)
	}
	receivers, err := s.ReceiverCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"active": 1, "failing": 0, "disabled": 0, "inactive": 1}; !maps.Equal(receivers, want) {
		t.Errorf("receivers %v, want %v", receivers, want)
	}

	// Without statistics (a table never analysed) only the exact counts are
	// known.
	if _, err := s.Pool().Exec(ctx, `DELETE FROM pg_statistic WHERE starelid = 'notifications'::regclass`); err != nil {
		t.Fatal(err)
	}
	got, err := s.NotificationCounts(ctx, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"pending": 7, "failed": 5, "delivered": 0, "cancelled": 0}; !maps.Equal(got, want) {
		t.Errorf("without statistics: %v, want %v", got, want)
	}
}
