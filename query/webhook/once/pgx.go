package once

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/notifyd/notifyd/query/webhook"
)

// PgxBeginner opens transactions: *pgxpool.Pool, or *pgx.Conn when one
// request at a time uses it.
type PgxBeginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// PgxExecer runs a statement: *pgxpool.Pool, *pgx.Conn or pgx.Tx.
type PgxExecer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func pgxExec(db PgxExecer) func(context.Context, string, ...any) (int64, error) {
	return func(ctx context.Context, sql string, args ...any) (int64, error) {
		tag, err := db.Exec(ctx, sql, args...)
		return tag.RowsAffected(), err
	}
}

// RecordPgx records notification id in tx and reports whether this is its
// first time. Make the business change in the same tx only when first is
// true; when it is false the notification was processed already (or is
// being processed by a transaction that has since committed).
func (t Table) RecordPgx(ctx context.Context, tx pgx.Tx, id string) (first bool, err error) {
	return t.record(ctx, pgxExec(tx), id)
}

// ProcessPgx opens a transaction on db, records id and, if it is new, calls
// fn with the transaction and commits. It reports whether fn ran and
// committed. On a duplicate, an error of fn, or a failed commit nothing is
// kept. Use it inside a handler of your own framework; PgxHandler is the
// whole net/http handler.
func (t Table) ProcessPgx(ctx context.Context, db PgxBeginner, id string, fn func(tx pgx.Tx) error) (processed bool, err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("once: begin: %w", err)
	}
	return t.process(ctx, txn{
		exec:     pgxExec(tx),
		commit:   tx.Commit,
		rollback: tx.Rollback,
	}, id, func() error { return fn(tx) })
}

// PgxHandler is an http.Handler for notifyd's callbacks (and for `notifyctl
// reconcile`, which signs the same envelope): it verifies the signature,
// parses the envelope, opens a transaction on db, records the notification
// id, calls fn with the transaction, commits, and answers 204 (or the
// success body of webhook.WithSuccessBody). A notification already
// recorded answers 204 without calling fn. An error of fn, or of the
// database, rolls back and answers 500, so notifyd retries later; a bad
// signature answers 400. opts are webhook.Handler's.
func (t Table) PgxHandler(v *webhook.Verifier, db PgxBeginner, fn func(ctx context.Context, tx pgx.Tx, e *webhook.Event) error, opts ...webhook.HandlerOption) http.Handler {
	return webhook.Handler(v, func(ctx context.Context, e *webhook.Event) error {
		_, err := t.ProcessPgx(ctx, db, e.ID, func(tx pgx.Tx) error { return fn(ctx, tx, e) })
		return err
	}, opts...)
}

// CleanupPgx deletes the ids recorded more than keep ago, in batches, and
// returns how many it deleted. Run it daily with keep at least notifyd's
// retention (DefaultKeep for notifyd's default).
func (t Table) CleanupPgx(ctx context.Context, db PgxExecer, keep time.Duration) (deleted int64, err error) {
	return t.cleanup(ctx, pgxExec(db), keep)
}

// RecordPgx is Default.RecordPgx.
func RecordPgx(ctx context.Context, tx pgx.Tx, id string) (bool, error) {
	return Default.RecordPgx(ctx, tx, id)
}

// PgxHandler is Default.PgxHandler.
func PgxHandler(v *webhook.Verifier, db PgxBeginner, fn func(ctx context.Context, tx pgx.Tx, e *webhook.Event) error, opts ...webhook.HandlerOption) http.Handler {
	return Default.PgxHandler(v, db, fn, opts...)
}

// CleanupPgx is Default.CleanupPgx.
func CleanupPgx(ctx context.Context, db PgxExecer, keep time.Duration) (int64, error) {
	return Default.CleanupPgx(ctx, db, keep)
}
