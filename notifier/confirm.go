package notifier

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/store"
)

// Confirmer tells the outbox relay which notifications notifyd has on record
// in its own Postgres. Until it does, a notification exists only in Redis
// (the worker records it at its first attempt), and a Redis that restarts
// empty loses it; so the relay keeps each outbox row, and queues it again
// after a grace period, until the Confirmer reports its notification
// recorded. From then on notifyd's re-drive job covers the loss of Redis.
//
// Why confirm rather than hand rows to notifyd's database directly: the
// relay keeps queueing straight into Redis as Notify does (one round trip
// per row, no extra write in notifyd's Postgres on the hot path), and the
// confirmation is one batched read per round, off the delivery path.
type Confirmer interface {
	// Recorded returns the subset of ids notifyd has on record. An error
	// means it cannot tell now; the relay asks again later.
	Recorded(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error)
}

// DatabaseConfirmer asks notifyd's Postgres, through pool (a connection to
// notifyd's database, not the producer's; read access to its notifications
// table is enough). `notifyd relay` uses it; an in-process relay can too if
// the producer may reach notifyd's database.
func DatabaseConfirmer(pool *pgxpool.Pool) Confirmer {
	return ConfirmerFunc(store.New(pool).RecordedNotifications)
}

// ConfirmerFunc adapts a function to a Confirmer.
type ConfirmerFunc func(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error)

// Recorded calls f.
func (f ConfirmerFunc) Recorded(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	return f(ctx, ids)
}
