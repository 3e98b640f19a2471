package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Relay moves committed outbox rows to notifyd's queue.
//
// Each round locks the oldest unsent rows (FOR UPDATE SKIP LOCKED, so
// several relays can run against one table), enqueues them as the first
// attempts of their notifications exactly as NotifyMany does (batch tasks
// of up to 100, one Redis round trip each, instead of one per row), and
// marks them sent in the same transaction: only the rows whose
// notifications are in Redis (and acknowledged by the replicas, with
// WithReplicaAck); a row whose write failed is tried again, whatever
// happened to the rest of its round. Rows reach the queue at least once, and each becomes
// exactly one notification in notifyd: a relay that dies between enqueueing
// and marking leaves the rows unsent, the next round enqueues them again,
// and because the notification id is derived from (receiver, idempotency
// key), the second copy is refused while the first is queued or running
// (by its task id, or for a member of a batch by its marker:
// internal/enqueue), and is skipped by the worker once the notification is
// on record. The relay adds no delivery of its own; the
// worker's guarantees (at least once, normally once) apply unchanged.
//
// A sent row is not done: until a worker records the notification in
// notifyd's Postgres it exists only in Redis, and a Redis that restarts
// empty loses it. So the row stays the source of truth until the relay's
// Confirmer (WithRelayConfirmer, required) reports the notification
// recorded; then confirmed_at is set. A sent row still unconfirmed after the
// grace (WithRelayConfirmGrace) is enqueued again, by the same id: if Redis
// still has the task, Asynq refuses the copy and nothing changes; if Redis
// lost it, the copy is the notification's first attempt again (counted in
// notifyd_outbox_resent_total and logged at warning level). Once recorded,
// the notification is the re-drive job's to bring back from Postgres.
//
// Order: with one relay, rows are enqueued in id order (the order in which
// they were inserted, which can differ from the order their transactions
// committed), and a row whose checks fail for a transient reason (the
// receiver registry unreachable) holds back the rows after it; a round's
// rows are written together, so one whose write fails may be overtaken by
// the others of its round; several relays interleave their batches.
// Delivery order is not guaranteed even so: workers deliver concurrently,
// and a retried notification arrives after later ones.
//
// The relay checks each row's receiver against notifyd's receiver registry,
// as Notify does. A row for an unknown or inactive receiver, or whose content
// fails validation, is marked dead (dead_at, last_error), logged at error
// level and counted in notifyd_outbox_failed_total; it is kept, and an
// operator can set dead_at back to NULL to have it tried again. Redis or
// registry outages are retried for as long as they last.
//
// The relay listens on the table's LISTEN/NOTIFY channel, so a commit is
// picked up at once, and polls as well (the channel does not work through a
// transaction-pooling PgBouncer, and a notification can be missed while the
// listening connection reconnects). It holds one connection of the pool for
// listening and uses one more per round.
type Relay struct {
	pool   *pgxpool.Pool
	client *Client
	opts   relayOptions
}

// RelayOption configures a Relay.
type RelayOption func(*relayOptions)

type relayOptions struct {
	batch     int
	poll      time.Duration
	retention time.Duration
	logger    *slog.Logger
	confirmer Confirmer
	grace     time.Duration
	// afterEnqueue is called between enqueueing a batch and marking it.
	afterEnqueue func(ids []int64)
}

// WithRelayBatchSize sets how many rows one round moves (default 100).
func WithRelayBatchSize(n int) RelayOption { return func(o *relayOptions) { o.batch = n } }

// WithRelayPollInterval sets how often the relay looks for rows without
// being woken (default 1 s).
func WithRelayPollInterval(d time.Duration) RelayOption { return func(o *relayOptions) { o.poll = d } }

// WithRelayConfirmer sets how the relay learns that notifyd has recorded a
// notification (required: Run fails without it). DatabaseConfirmer reads
// notifyd's database; any other source (notifyd's API, say) implements
// Confirmer.
func WithRelayConfirmer(c Confirmer) RelayOption { return func(o *relayOptions) { o.confirmer = c } }

// WithRelayConfirmGrace sets how long after queueing a row the relay first
// asks whether notifyd has recorded its notification, and how long it waits
// between asking again (default 1 min). A shorter grace re-sends sooner what
// a Redis restart lost, at the cost of more look-ups and of needless
// (refused) re-sends while a backlog keeps notifications queued.
func WithRelayConfirmGrace(d time.Duration) RelayOption { return func(o *relayOptions) { o.grace = d } }

// WithRelayAfterEnqueue sets a function the relay calls after it has
// enqueued a batch and before it marks those rows sent, with their ids:
// tests stop a relay there to prove what survives a crash at that moment.
func WithRelayAfterEnqueue(f func(ids []int64)) RelayOption {
	return func(o *relayOptions) { o.afterEnqueue = f }
}

// WithRelayRetention sets how long confirmed rows are kept before the relay
// deletes them (default 7 days); zero or less keeps them forever. Dead and
// unconfirmed rows are never deleted by the relay.
func WithRelayRetention(d time.Duration) RelayOption {
	return func(o *relayOptions) { o.retention = d }
}

// WithRelayLogger sets the logger (default slog.Default()).
func WithRelayLogger(l *slog.Logger) RelayOption { return func(o *relayOptions) { o.logger = l } }

// NewRelay returns a relay that reads the outbox table in pool (the
// producer's database) and enqueues with client, whose options (outbox table
// name, payload limit, private targets) it shares with EnqueueTx.
func NewRelay(pool *pgxpool.Pool, client *Client, opts ...RelayOption) *Relay {
	o := relayOptions{batch: 100, poll: time.Second, retention: 7 * 24 * time.Hour, logger: slog.Default(), grace: time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if o.batch <= 0 {
		o.batch = 100
	}
	if o.poll <= 0 {
		o.poll = time.Second
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.grace <= 0 {
		o.grace = time.Minute
	}
	o.logger = o.logger.With("component", "outbox_relay")
	return &Relay{pool: pool, client: client, opts: o}
}

// How often the relay refreshes its gauges and prunes confirmed rows.
const (
	statsEvery = 5 * time.Second
	pruneEvery = time.Minute
)

// ErrNoConfirmer: the relay was built without WithRelayConfirmer.
var ErrNoConfirmer = errors.New("notifier: outbox relay needs a Confirmer (WithRelayConfirmer): without one a Redis that restarts empty loses sent rows")

// Run relays until ctx ends, then returns nil. It returns an error at once
// if it has no Confirmer or the outbox table is misconfigured (bad name,
// missing table or column, no permission); later errors are logged and
// retried.
func (r *Relay) Run(ctx context.Context) error {
	if r.opts.confirmer == nil {
		return ErrNoConfirmer
	}
	table, err := outboxTable(r.client.opts.outbox)
	if err != nil {
		return err
	}
	var pgErr *pgconn.PgError
	if _, err := r.pool.Exec(ctx, `SELECT confirmed_at, resends FROM `+pgx.Identifier{table}.Sanitize()+` LIMIT 0`); errors.As(err, &pgErr) {
		return fmt.Errorf("notifier: outbox relay: table %s (create or upgrade it with MigrateOutbox or `notifyd outbox-schema`): %w", table, err)
	}
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.listen(ctx, table, wake)
	}()
	defer wg.Wait()

	r.opts.logger.Info("outbox relay started", "table", table, "batch", r.opts.batch, "poll", r.opts.poll,
		"confirm_grace", r.opts.grace)
	var lastStats, lastPrune, lastConfirm time.Time
	failures := 0
	// Since Go 1.23 Reset discards a pending tick, so no draining is needed.
	timer := time.NewTimer(r.opts.poll)
	defer timer.Stop()
	for {
		n, err := r.relayBatch(ctx, table)
		if ctx.Err() != nil {
			r.opts.logger.Info("outbox relay stopped")
			return nil
		}
		delay := r.opts.poll
		if err != nil {
			failures++
			delay = min(r.opts.poll<<min(failures, 5), 30*time.Second)
			r.opts.logger.Warn("outbox relay round failed; retrying", "err", err, "retry_in", delay)
		} else {
			failures = 0
		}
		if time.Since(lastConfirm) >= min(r.opts.poll, r.opts.grace) {
			lastConfirm = time.Now()
			r.confirmAll(ctx, table)
		}
		if time.Since(lastStats) >= statsEvery {
			lastStats = time.Now()
			r.updateStats(ctx, table)
		}
		if r.opts.retention > 0 && time.Since(lastPrune) >= pruneEvery {
			lastPrune = time.Now()
			if _, err := r.prune(ctx, table); err != nil && ctx.Err() == nil {
				r.opts.logger.Warn("outbox prune failed", "err", err)
			}
		}
		if err == nil && n == r.opts.batch {
			continue // a full batch: more are probably waiting
		}
		timer.Reset(delay)
		select {
		case <-ctx.Done():
			r.opts.logger.Info("outbox relay stopped")
			return nil
		case <-wake:
		case <-timer.C:
		}
	}
}
