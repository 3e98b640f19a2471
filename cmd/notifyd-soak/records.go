package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// loadRecords reads every notification and automatic attempt from notifyd's
// Postgres, and the (id, attempt) pairs held more than once. Both reads see
// one snapshot: a notification recorded between two separate reads would
// look like an attempt of no notification.
func loadRecords(ctx context.Context, db *pgxpool.Pool) (map[string]*Record, []string, error) {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, fmt.Errorf("load records: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	notes := make(map[string]*Record)
	rows, err := tx.Query(ctx, `SELECT id::text, status::text, attempts, idempotency_key FROM notifications`)
	if err != nil {
		return nil, nil, fmt.Errorf("load notifications: %w", err)
	}
	for rows.Next() {
		var id string
		n := &Record{Rows: make(map[int]Row)}
		if err := rows.Scan(&id, &n.Status, &n.Attempts, &n.Key); err != nil {
			return nil, nil, fmt.Errorf("load notifications: %w", err)
		}
		notes[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("load notifications: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT notification_id::text, attempt_no, outcome::text, coalesce(status_code, 0)
		FROM delivery_attempts WHERE attempt_no > 0`)
	if err != nil {
		return nil, nil, fmt.Errorf("load attempts: %w", err)
	}
	var twice []string
	for rows.Next() {
		var id string
		var no int
		var r Row
		if err := rows.Scan(&id, &no, &r.Outcome, &r.Code); err != nil {
			return nil, nil, fmt.Errorf("load attempts: %w", err)
		}
		n := notes[id]
		if n == nil {
			twice = append(twice, fmt.Sprintf("%s#%d (attempt of no notification)", id, no))
			continue
		}
		if _, dup := n.Rows[no]; dup {
			twice = append(twice, fmt.Sprintf("%s#%d", id, no))
		}
		n.Rows[no] = r
	}
	return notes, twice, rows.Err()
}

// progress is the figures of one progress line, from Postgres.
func progress(ctx context.Context, db *pgxpool.Pool) (delivered, failed, pending int, err error) {
	err = db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'failed'),
		count(*) FILTER (WHERE status = 'pending') FROM notifications`).Scan(&delivered, &failed, &pending)
	if err != nil {
		err = fmt.Errorf("progress: %w", err)
	}
	return
}
