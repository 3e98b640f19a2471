package once

import (
	"context"
	"fmt"
	"time"
)

// rollbackTimeout bounds the rollback of an abandoned transaction, which
// runs even when the request's context is already cancelled.
const rollbackTimeout = 5 * time.Second

// txn is one open transaction, whichever driver opened it.
type txn struct {
	exec     func(ctx context.Context, sql string, args ...any) (int64, error)
	commit   func(ctx context.Context) error
	rollback func(ctx context.Context) error
}

// process records id in tx and, the first time, calls fn and commits. A
// duplicate, an error of fn or a failed commit rolls the transaction back,
// so the business change and the record never part.
func (t Table) process(ctx context.Context, tx txn, id string, fn func() error) (first bool, err error) {
	committed := false
	defer func() {
		if !committed {
			// Also after a panic in fn: the connection goes back clean.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			_ = tx.rollback(rctx)
		}
	}()
	first, err = t.record(ctx, tx.exec, id)
	if err != nil || !first {
		return false, err
	}
	if err := fn(); err != nil {
		return false, err
	}
	if err := tx.commit(ctx); err != nil {
		return false, fmt.Errorf("once: commit notification %s: %w", id, err)
	}
	committed = true
	return true, nil
}
