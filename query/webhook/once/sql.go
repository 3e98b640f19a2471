package once

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"time"

	"github.com/notifyd/notifyd/query/webhook"
)

// SQLExecer runs a statement: *sql.DB, *sql.Conn or *sql.Tx.
type SQLExecer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func sqlExec(db SQLExecer) func(context.Context, string, ...any) (int64, error) {
	return func(ctx context.Context, query string, args ...any) (int64, error) {
		res, err := db.ExecContext(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
}

// RecordSQL is RecordPgx for database/sql (a PostgreSQL driver: pgx's
// stdlib, lib/pq).
func (t Table) RecordSQL(ctx context.Context, tx *sql.Tx, id string) (first bool, err error) {
	return t.record(ctx, sqlExec(tx), id)
}

// ProcessSQL is ProcessPgx for database/sql. The transaction uses the
// driver's default isolation (READ COMMITTED on PostgreSQL).
func (t Table) ProcessSQL(ctx context.Context, db *sql.DB, id string, fn func(tx *sql.Tx) error) (processed bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("once: begin: %w", err)
	}
	return t.process(ctx, txn{
		exec:     sqlExec(tx),
		commit:   func(context.Context) error { return tx.Commit() },
		rollback: func(context.Context) error { return tx.Rollback() },
	}, id, func() error { return fn(tx) })
}

// SQLHandler is PgxHandler for database/sql.
func (t Table) SQLHandler(v *webhook.Verifier, db *sql.DB, fn func(ctx context.Context, tx *sql.Tx, e *webhook.Event) error, opts ...webhook.HandlerOption) http.Handler {
	return webhook.Handler(v, func(ctx context.Context, e *webhook.Event) error {
		_, err := t.ProcessSQL(ctx, db, e.ID, func(tx *sql.Tx) error { return fn(ctx, tx, e) })
		return err
	}, opts...)
}

// CleanupSQL is CleanupPgx for database/sql.
func (t Table) CleanupSQL(ctx context.Context, db SQLExecer, keep time.Duration) (deleted int64, err error) {
	return t.cleanup(ctx, sqlExec(db), keep)
}

// RecordSQL is Default.RecordSQL.
func RecordSQL(ctx context.Context, tx *sql.Tx, id string) (bool, error) {
	return Default.RecordSQL(ctx, tx, id)
}

// SQLHandler is Default.SQLHandler.
func SQLHandler(v *webhook.Verifier, db *sql.DB, fn func(ctx context.Context, tx *sql.Tx, e *webhook.Event) error, opts ...webhook.HandlerOption) http.Handler {
	return Default.SQLHandler(v, db, fn, opts...)
}

// CleanupSQL is Default.CleanupSQL.
func CleanupSQL(ctx context.Context, db SQLExecer, keep time.Duration) (int64, error) {
	return Default.CleanupSQL(ctx, db, keep)
}
