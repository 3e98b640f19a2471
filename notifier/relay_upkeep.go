package notifier

// The relay's gauges (backlog, oldest row, dead and unconfirmed rows) and the
// pruning of confirmed rows past the retention.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pruneBatch bounds the rows one prune statement deletes.
const pruneBatch = 1000

// outboxStats is what the gauges show.
type outboxStats struct {
	backlog     int64
	oldest      time.Duration
	dead        int64
	unconfirmed int64
}

func (r *Relay) stats(ctx context.Context, table string) (outboxStats, error) {
	var s outboxStats
	var oldest float64
	t := pgx.Identifier{table}.Sanitize()
	// Each half reads through its partial index; confirmed rows, the bulk
	// of the table, are not read. (A dead row is among one of the two.)
	err := r.pool.QueryRow(ctx, `SELECT u.backlog, u.oldest, u.dead + c.dead, c.unconfirmed FROM
		(SELECT count(*) FILTER (WHERE dead_at IS NULL) AS backlog,
			coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE dead_at IS NULL)), 0)::float8 AS oldest,
			count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead
			FROM `+t+` WHERE sent_at IS NULL) u,
		(SELECT count(*) FILTER (WHERE dead_at IS NULL) AS unconfirmed,
			count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead
			FROM `+t+` WHERE sent_at IS NOT NULL AND confirmed_at IS NULL) c`).Scan(&s.backlog, &oldest, &s.dead, &s.unconfirmed)
	if err != nil {
		return s, fmt.Errorf("outbox stats: %w", err)
	}
	s.oldest = time.Duration(oldest * float64(time.Second))
	return s, nil
}

func (r *Relay) updateStats(ctx context.Context, table string) {
	s, err := r.stats(ctx, table)
	if err != nil {
		if ctx.Err() == nil {
			r.opts.logger.Warn("outbox stats failed", "err", err)
		}
		return
	}
	outboxBacklog.Set(float64(s.backlog))
	outboxOldest.Set(s.oldest.Seconds())
	outboxDead.Set(float64(s.dead))
	outboxUnconfirmed.Set(float64(s.unconfirmed))
}

// prune deletes rows confirmed longer than the retention ago, in batches so that
// no statement holds many locks or runs long.
func (r *Relay) prune(ctx context.Context, table string) (int64, error) {
	t := pgx.Identifier{table}.Sanitize()
	var total int64
	for {
		tag, err := r.pool.Exec(ctx, `DELETE FROM `+t+` WHERE id IN (
			SELECT id FROM `+t+` WHERE confirmed_at < now() - make_interval(secs => $1)
			ORDER BY confirmed_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, r.opts.retention.Seconds(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune outbox: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			if total > 0 {
				r.opts.logger.Info("pruned confirmed outbox rows", "count", total)
			}
			return total, nil
		}
	}
}
