package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// AuditEvent is one mutating API request as recorded in audit_events.
type AuditEvent struct {
	ID            uuid.UUID `json:"id"`
	OccurredAt    time.Time `json:"occurred_at"`
	PrincipalKind string    `json:"principal_kind"`
	PrincipalID   string    `json:"principal_id"`
	Method        string    `json:"method"`
	Route         string    `json:"route"`
	TargetID      *string   `json:"target_id"`
	Status        int       `json:"status"`
	RemoteIP      string    `json:"remote_ip"`
}

// InsertAuditEvent stores e; a zero ID or time is filled in.
func (s *Store) InsertAuditEvent(ctx context.Context, e *AuditEvent) error {
	if e.ID == uuid.Nil {
		e.ID = uuid.New()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = time.Now()
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO audit_events (id, occurred_at, principal_kind, principal_id, method, route, target_id, status, remote_ip)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		e.ID, e.OccurredAt, e.PrincipalKind, e.PrincipalID, e.Method, e.Route, e.TargetID, e.Status, e.RemoteIP)
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}

// AuditFilter selects audit events, newest first. Zero fields do not filter.
type AuditFilter struct {
	TargetID      string
	PrincipalKind string
	PrincipalID   string
	Since, Until  *time.Time // occurred_at >= Since, < Until
	After         *Position  // keyset: events strictly older than this one
	Limit         int
}

// ListAuditEvents returns up to f.Limit events and whether more follow.
func (s *Store) ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, bool, error) {
	var afterAt *time.Time
	var afterID *uuid.UUID
	if f.After != nil {
		afterAt, afterID = &f.After.CreatedAt, &f.After.ID
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, occurred_at, principal_kind, principal_id, method, route, target_id, status, remote_ip
		FROM audit_events
		WHERE ($1 = '' OR target_id = $1)
		  AND ($2 = '' OR principal_kind = $2)
		  AND ($3 = '' OR principal_id = $3)
		  AND ($4::timestamptz IS NULL OR occurred_at >= $4)
		  AND ($5::timestamptz IS NULL OR occurred_at < $5)
		  AND ($6::timestamptz IS NULL OR (occurred_at, id) < ($6, $7::uuid))
		ORDER BY occurred_at DESC, id DESC
		LIMIT $8`,
		f.TargetID, f.PrincipalKind, f.PrincipalID, f.Since, f.Until, afterAt, afterID, f.Limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("list audit events: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[AuditEvent])
	if err != nil {
		return nil, false, fmt.Errorf("list audit events: %w", err)
	}
	more := len(out) > f.Limit
	if more {
		out = out[:f.Limit]
	}
	return out, more, nil
}

// DeleteAuditEventsBefore deletes up to batch events older than cutoff and
// returns how many it deleted.
func (s *Store) DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM audit_events WHERE id IN (
			SELECT id FROM audit_events WHERE occurred_at < $1 ORDER BY occurred_at LIMIT $2)`, cutoff, batch)
	if err != nil {
		return 0, fmt.Errorf("delete audit events: %w", err)
	}
	return tag.RowsAffected(), nil
}
