package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// The console's operator views (query/console): counts, a per-minute
// chart, latency percentiles and receivers' health. Each reads one bounded
// window of notifications through notifications_created or
// notifications_receiver_created, and attempts through their primary key.

// StatusCounts counts the notifications created since, by status.
func (s *Store) StatusCounts(ctx context.Context, since time.Time) (map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT status::text, count(*) FROM notifications WHERE created_at >= $1 GROUP BY status`, since)
	if err != nil {
		return nil, fmt.Errorf("status counts: %w", err)
	}
	out := map[string]int{}
	var status string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&status, &n}, func() error { out[status] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("status counts: %w", err)
	}
	return out, nil
}

// MinuteOutcome is how many attempts of one outcome started in one minute.
type MinuteOutcome struct {
	Minute  time.Time
	Outcome string
	Count   int
}

// AttemptsPerMinute counts the attempts started since (truncated to the
// minute, by outcome) of the notifications created after createdAfter: the
// attempts table has no index by time, so its rows are reached from their
// notifications (see summarySQL for the OFFSET 0).
func (s *Store) AttemptsPerMinute(ctx context.Context, since, createdAfter time.Time) ([]MinuteOutcome, error) {
	rows, err := s.pool.Query(ctx, `
		WITH n AS MATERIALIZED (SELECT id, created_at FROM notifications WHERE created_at >= $2)
		SELECT date_trunc('minute', a.started_at), a.outcome::text, count(*)
		FROM n CROSS JOIN LATERAL (
			SELECT started_at, outcome FROM delivery_attempts
			WHERE notification_id = n.id AND notification_created_at = n.created_at OFFSET 0
		) a
		WHERE a.started_at >= $1
		GROUP BY 1, 2 ORDER BY 1, 2`, since, createdAfter)
	if err != nil {
		return nil, fmt.Errorf("attempts per minute: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MinuteOutcome, error) {
		var m MinuteOutcome
		err := r.Scan(&m.Minute, &m.Outcome, &m.Count)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("attempts per minute: %w", err)
	}
	return out, nil
}

// FirstAttemptPercentiles returns the p50, p95 and p99 duration (ms) of the
// first attempts of the notifications created since; nil without any.
func (s *Store) FirstAttemptPercentiles(ctx context.Context, since time.Time) ([]float64, error) {
	var p []float64
	err := s.pool.QueryRow(ctx, `
		SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY a.duration_ms)
		FROM notifications n JOIN delivery_attempts a ON a.notification_id = n.id AND a.attempt_no = 1
			AND a.notification_created_at = n.created_at
		WHERE n.created_at >= $1`, since).Scan(&p)
	if err != nil {
		return nil, fmt.Errorf("first attempt percentiles: %w", err)
	}
	return p, nil
}

// ReceiverHealth is how one receiver's notifications created in a window
// fared.
type ReceiverHealth struct {
	Delivered int
	Failed    int
	Pending   int
	// LastSuccess is when its newest delivered notification of the window
	// was delivered; nil without one.
	LastSuccess *time.Time
	// FailingInARow counts the notifications created after that one (or in
	// the whole window) that were attempted and are failed or still pending.
	FailingInARow int
}

// receiversHealthSQL counts each receiver's notifications created since $1
// through notifications_receiver_created: its window of the index, then the
// newest delivered one (read backwards, stopping at the first), then those
// after it. Its cost grows with a day's notifications (about 330,000 on the
// bench's 10 M rows), which is why the console caches the result.
const receiversHealthSQL = `
	SELECT r.id, c.delivered, c.failed, c.pending, ok.delivered_at, streak.n
	FROM receivers r
	CROSS JOIN LATERAL (
		SELECT count(*) FILTER (WHERE status = 'delivered') AS delivered,
			count(*) FILTER (WHERE status = 'failed') AS failed,
			count(*) FILTER (WHERE status = 'pending') AS pending
		FROM notifications WHERE receiver_id = r.id AND created_at >= $1
	) c
	LEFT JOIN LATERAL (
		SELECT created_at, delivered_at FROM notifications
		WHERE receiver_id = r.id AND created_at >= $1 AND status = 'delivered'
		ORDER BY created_at DESC, id DESC LIMIT 1
	) ok ON true
	CROSS JOIN LATERAL (
		SELECT count(*) AS n FROM notifications
		WHERE receiver_id = r.id AND created_at >= coalesce(ok.created_at, $1)
			AND attempts > 0 AND status IN ('failed', 'pending')
	) streak`

// ReceiversHealth returns every receiver's health over the notifications
// created since, by receiver id.
func (s *Store) ReceiversHealth(ctx context.Context, since time.Time) (map[uuid.UUID]ReceiverHealth, error) {
	rows, err := s.pool.Query(ctx, receiversHealthSQL, since)
	if err != nil {
		return nil, fmt.Errorf("receiver health: %w", err)
	}
	out := map[uuid.UUID]ReceiverHealth{}
	var id uuid.UUID
	var h ReceiverHealth
	_, err = pgx.ForEachRow(rows, []any{&id, &h.Delivered, &h.Failed, &h.Pending, &h.LastSuccess, &h.FailingInARow}, func() error {
		out[id] = h
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("receiver health: %w", err)
	}
	return out, nil
}

// ReceiverEntry is a receiver as the console's list shows it.
type ReceiverEntry struct {
	ID          uuid.UUID
	Name        string
	CallbackURL string
	Active      bool
}

// ReceiverEntries lists every receiver by name: one read of the receivers
// table, so the list shows a change (a new receiver, one deactivated) at
// once while its health figures may be cached.
func (s *Store) ReceiverEntries(ctx context.Context) ([]ReceiverEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name, callback_url, active FROM receivers ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("receiver entries: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ReceiverEntry])
	if err != nil {
		return nil, fmt.Errorf("receiver entries: %w", err)
	}
	return out, nil
}

// ReceiverName is a receiver's id and name, for pickers.
type ReceiverName struct {
	ID   uuid.UUID
	Name string
}

// ReceiverNames lists every receiver by name.
func (s *Store) ReceiverNames(ctx context.Context) ([]ReceiverName, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, name FROM receivers ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("receiver names: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ReceiverName, error) {
		var n ReceiverName
		err := r.Scan(&n.ID, &n.Name)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("receiver names: %w", err)
	}
	return out, nil
}
