package notifier

// The relay's LISTEN/NOTIFY wake-up: a commit to the outbox starts a round
// at once instead of at the next poll.

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// listen wakes the relay whenever a transaction that wrote the outbox
// commits. It reconnects with a backoff; the poll covers the gaps.
func (r *Relay) listen(ctx context.Context, channel string, wake chan<- struct{}) {
	failures := 0
	for {
		established, err := r.listenOnce(ctx, channel, wake)
		if ctx.Err() != nil {
			return
		}
		if established {
			failures = 0
		}
		failures++
		delay := min(time.Second<<min(failures, 5), 30*time.Second)
		r.opts.logger.Warn("outbox relay: LISTEN connection failed; polling meanwhile", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context, channel string, wake chan<- struct{}) (established bool, err error) {
	pc, err := r.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	// The connection leaves the pool for good: a connection that is
	// LISTENing must not be handed to the application afterwards.
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{channel}.Sanitize()); err != nil {
		return false, err
	}
	// Rows committed while nobody listened are not announced again.
	signal(wake)
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
		signal(wake)
	}
}

func signal(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
