package migrations

import (
	"context"
	"database/sql"
)

// FirstPartitionSteps runs 00010's first steps only (prepare, fill the
// key table), as a run that stopped half-way would have.
func FirstPartitionSteps(ctx context.Context, db *sql.DB) error {
	if err := execFile("partitioning/prepare.sql")(ctx, db); err != nil {
		return err
	}
	return fillKeys(ctx, db)
}
