package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ReceiverSummary is what happened to one receiver's notifications created
// in a window: how many are in each status now, the failure rate over those
// that finished, and their delivery attempts.
type ReceiverSummary struct {
	ReceiverID   uuid.UUID
	ReceiverName string
	// ReceiverStatus is the receiver's health state now (not that day's),
	// in snapshots read with their receiver.
	ReceiverStatus string
	// Day is the UTC day of a daily snapshot (midnight UTC); zero for a
	// live summary.
	Day       time.Time
	Delivered int
	Failed    int
	Pending   int
	Cancelled int
	// FailureRate is Failed / (Delivered + Failed); nil while neither is
	// above zero (nothing has finished yet).
	FailureRate *float64
	// Attempts counts automatic and manual attempts; the latencies (in
	// milliseconds) are nil without attempts.
	Attempts     int
	AvgAttemptMS *float64
	P95AttemptMS *float64
	ComputedAt   time.Time
}

// Total is the number of notifications summarised.
func (r *ReceiverSummary) Total() int { return r.Delivered + r.Failed + r.Pending + r.Cancelled }

// summarySQL aggregates the notifications created in [$1, $2), optionally of
// one receiver ($3), by receiver. The notifications are read once (through
// notifications_receiver_created with a receiver, notifications_created
// without) and their attempts through the attempts' primary key. A plain
// join lets the planner hash the whole attempts table instead (a day is a
// thirtieth of a month's retention, and it cannot tell that the day's
// attempts were written together); the OFFSET 0 keeps the per-notification
// subquery from being flattened back into that join.
func summarySQL(oneReceiver bool) string {
	filter := ""
	if oneReceiver {
		filter = "AND receiver_id = $3"
	}
	return `
		WITH n AS MATERIALIZED (
			SELECT id, receiver_id, status, created_at FROM notifications
			WHERE created_at >= $1 AND created_at < $2 ` + filter + `
		), c AS (
			SELECT receiver_id,
				count(*) FILTER (WHERE status = 'delivered') AS delivered,
				count(*) FILTER (WHERE status = 'failed') AS failed,
				count(*) FILTER (WHERE status = 'pending') AS pending,
				count(*) FILTER (WHERE status = 'cancelled') AS cancelled
			FROM n GROUP BY receiver_id
		), a AS (
			SELECT n.receiver_id, count(*) AS attempts, avg(a.duration_ms)::float8 AS avg_ms,
				percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms) AS p95_ms
			FROM n CROSS JOIN LATERAL (
				SELECT duration_ms FROM delivery_attempts
				WHERE notification_id = n.id AND notification_created_at = n.created_at OFFSET 0
			) a
			GROUP BY n.receiver_id
		)
		SELECT c.receiver_id, c.delivered, c.failed, c.pending, c.cancelled,
			CASE WHEN c.delivered + c.failed > 0 THEN c.failed::float8 / (c.delivered + c.failed) END AS failure_rate,
			coalesce(a.attempts, 0) AS attempts, a.avg_ms, a.p95_ms
		FROM c LEFT JOIN a USING (receiver_id)`
}

// LiveSummary summarises receiver's notifications created in [from, to),
// computed now. A receiver without notifications there gets zeros.
func (s *Store) LiveSummary(ctx context.Context, receiver uuid.UUID, from, to time.Time) (*ReceiverSummary, error) {
	var r ReceiverSummary
	var now time.Time
	err := s.pool.QueryRow(ctx, `SELECT *, now() FROM (`+summarySQL(true)+`) s`, from, to, receiver).
		Scan(&r.ReceiverID, &r.Delivered, &r.Failed, &r.Pending, &r.Cancelled, &r.FailureRate, &r.Attempts, &r.AvgAttemptMS, &r.P95AttemptMS, &now)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if err := s.pool.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
			return nil, fmt.Errorf("live summary %s: %w", receiver, err)
		}
		r = ReceiverSummary{ReceiverID: receiver}
	case err != nil:
		return nil, fmt.Errorf("live summary %s: %w", receiver, err)
	}
	r.ComputedAt = now
	return &r, nil
}

// SaveDailySummaries computes every receiver's snapshot for the UTC day that
// contains day, over the notifications created that day, stores it
// (replacing an earlier snapshot of the same day) and returns it, worst
// failure rate first. Receivers without notifications that day get no row.
func (s *Store) SaveDailySummaries(ctx context.Context, day time.Time) ([]ReceiverSummary, error) {
	from := utcDay(day)
	rows, err := s.pool.Query(ctx, `
		WITH s AS (`+summarySQL(false)+`), up AS (
			INSERT INTO receiver_daily_summaries AS d (receiver_id, day, delivered, failed, pending, cancelled,
				failure_rate, attempts, avg_attempt_ms, p95_attempt_ms, computed_at)
			SELECT receiver_id, ($1::timestamptz AT TIME ZONE 'UTC')::date, delivered, failed, pending, cancelled,
				failure_rate, attempts, avg_ms, p95_ms, now()
			FROM s
			ON CONFLICT (receiver_id, day) DO UPDATE SET
				delivered = excluded.delivered, failed = excluded.failed, pending = excluded.pending,
				cancelled = excluded.cancelled, failure_rate = excluded.failure_rate, attempts = excluded.attempts,
				avg_attempt_ms = excluded.avg_attempt_ms, p95_attempt_ms = excluded.p95_attempt_ms,
				computed_at = excluded.computed_at
			RETURNING d.*
		)
		SELECT `+dailyColumns+` FROM up d JOIN receivers r ON r.id = d.receiver_id
		ORDER BY `+worstFirst, from, from.Add(24*time.Hour))
	if err != nil {
		return nil, fmt.Errorf("save daily summaries %s: %w", from.Format(time.DateOnly), err)
	}
	return collectDaily(rows, "save daily summaries")
}

const dailyColumns = `d.receiver_id, r.name, r.status, d.day, d.delivered, d.failed, d.pending, d.cancelled,
	d.failure_rate, d.attempts, d.avg_attempt_ms, d.p95_attempt_ms, d.computed_at`

// worstFirst orders snapshots so that the receivers an operator should look
// at come first: highest failure rate, then most failures, then most still
// pending (retrying, with nothing finished yet).
const worstFirst = `d.failure_rate DESC NULLS LAST, d.failed DESC, d.pending DESC, d.receiver_id`

// DailySummaries returns every receiver's stored snapshot of the UTC day
// containing day, worst failure rate first.
func (s *Store) DailySummaries(ctx context.Context, day time.Time) ([]ReceiverSummary, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+dailyColumns+` FROM receiver_daily_summaries d JOIN receivers r ON r.id = d.receiver_id
		WHERE d.day = ($1::timestamptz AT TIME ZONE 'UTC')::date
		ORDER BY `+worstFirst, utcDay(day))
	if err != nil {
		return nil, fmt.Errorf("daily summaries: %w", err)
	}
	return collectDaily(rows, "daily summaries")
}

// ReceiverDailySummaries returns receiver's stored snapshots of the UTC days
// from the one containing from up to and including the one containing to,
// newest first.
func (s *Store) ReceiverDailySummaries(ctx context.Context, receiver uuid.UUID, from, to time.Time) ([]ReceiverSummary, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+dailyColumns+` FROM receiver_daily_summaries d JOIN receivers r ON r.id = d.receiver_id
		WHERE d.receiver_id = $1 AND d.day BETWEEN ($2::timestamptz AT TIME ZONE 'UTC')::date AND ($3::timestamptz AT TIME ZONE 'UTC')::date
		ORDER BY d.day DESC`, receiver, utcDay(from), utcDay(to))
	if err != nil {
		return nil, fmt.Errorf("receiver daily summaries %s: %w", receiver, err)
	}
	return collectDaily(rows, "receiver daily summaries")
}

// HasDailySummaries reports whether the snapshot of the UTC day containing
// day has been computed (for any receiver).
func (s *Store) HasDailySummaries(ctx context.Context, day time.Time) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM receiver_daily_summaries WHERE day = ($1::timestamptz AT TIME ZONE 'UTC')::date)`,
		utcDay(day)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("daily summaries exist: %w", err)
	}
	return ok, nil
}

func collectDaily(rows pgx.Rows, what string) ([]ReceiverSummary, error) {
	out := []ReceiverSummary{}
	var r ReceiverSummary
	var day time.Time
	_, err := pgx.ForEachRow(rows, []any{&r.ReceiverID, &r.ReceiverName, &r.ReceiverStatus, &day, &r.Delivered, &r.Failed, &r.Pending, &r.Cancelled,
		&r.FailureRate, &r.Attempts, &r.AvgAttemptMS, &r.P95AttemptMS, &r.ComputedAt}, func() error {
		// A date scans as midnight UTC.
		r.Day = day.UTC()
		out = append(out, r)
		// The pointers were just copied into out; the next row must not overwrite them.
		r.FailureRate, r.AvgAttemptMS, r.P95AttemptMS = nil, nil, nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// utcDay is midnight UTC of the UTC day containing t.
func utcDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
