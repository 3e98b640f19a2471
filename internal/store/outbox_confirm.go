package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// RecordedNotifications reports which of ids notifyd has on record, in any
// status. The outbox relay asks it before it lets go of an outbox row: once a
// notification is here, the re-drive job brings it back if Redis loses it.
func (s *Store) RecordedNotifications(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	out := make(map[uuid.UUID]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	arg := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		arg[i] = pgID(id)
	}
	rows, err := s.pool.Query(ctx, `SELECT id FROM notification_keys WHERE id = ANY($1)`, arg)
	if err != nil {
		return nil, fmt.Errorf("recorded notifications: %w", err)
	}
	var id uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{scanID(&id)}, func() error {
		out[id] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("recorded notifications: %w", err)
	}
	return out, nil
}
