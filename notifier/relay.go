package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Relay moves committed outbox rows to notifyd's queue.
//
// Each round locks the oldest unsent rows (FOR UPDATE SKIP LOCKED, so
// several relays can run against one table), enqueues each as the first
// attempt of its notification exactly as Notify does, and marks them sent in
// the same transaction. Rows reach the queue at least once, and each becomes
// exactly one notification in notifyd: a relay that dies between enqueueing
// and marking leaves the rows unsent, the next round enqueues them again,
// and because the notification id (and so the task id) is derived from
// (receiver, idempotency key), the second copy is refused by Asynq while the
// first is queued or running, and is skipped by the worker once the
// notification is on record. The relay adds no delivery of its own; the
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
// committed), and a row that cannot be enqueued for a transient reason
// holds back the rows after it; several relays interleave their batches.
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
	pruneBatch = 1000
	// markTimeout bounds marking rows sent after the relay was told to stop:
	// finishing the round spares the next relay re-sending them.
	markTimeout = 10 * time.Second
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

type outboxRow struct {
	id             int64
	notificationID uuid.UUID
	receiverID     uuid.UUID
	eventType      string
	key            string
	callbackURL    string
	payload        []byte
	createdAt      time.Time
}

// deadRow is a row given up on.
type deadRow struct {
	id     int64
	reason string // metric label
	err    string
}

// lockRows reads the rows a query (from FROM on) selects and locks.
func lockRows(ctx context.Context, tx pgx.Tx, from string, args ...any) ([]outboxRow, error) {
	rows, err := tx.Query(ctx, `SELECT id, notification_id, receiver_id, event_type, idempotency_key, callback_url, payload, created_at `+from, args...)
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	var batch []outboxRow
	var row outboxRow
	_, err = pgx.ForEachRow(rows, []any{&row.id, &row.notificationID, &row.receiverID, &row.eventType,
		&row.key, &row.callbackURL, &row.payload, &row.createdAt}, func() error {
		batch = append(batch, row)
		row.payload = nil // ForEachRow reuses the targets
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	return batch, nil
}

// relayBatch runs one round and returns how many rows it took. An error
// means the round, or part of it, must be retried.
func (r *Relay) relayBatch(ctx context.Context, table string) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		outboxErrors.Inc()
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
		defer cancel()
		_ = tx.Rollback(rctx) // no-op after Commit
	}()
	t := pgx.Identifier{table}.Sanitize()
	batch, err := lockRows(ctx, tx, `FROM `+t+` WHERE sent_at IS NULL AND dead_at IS NULL
		ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, r.opts.batch)
	if err != nil {
		outboxErrors.Inc()
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}

	var (
		sent    []int64
		dead    []deadRow
		failed  int64 // the row a transient error stopped the round at
		failErr error
	)
rows:
	for i := range batch {
		if ctx.Err() != nil {
			break // shutting down: mark what was enqueued and leave
		}
		_, dr, err := r.send(ctx, &batch[i])
		switch {
		case dr != nil:
			dead = append(dead, *dr)
			r.logDead(&batch[i], dr)
		case err != nil:
			if ctx.Err() == nil {
				failed, failErr = batch[i].id, err
			}
			break rows // keep order: later rows wait for this one
		default:
			sent = append(sent, batch[i].id)
		}
	}
	if h := r.opts.afterEnqueue; h != nil && len(sent) > 0 {
		h(sent)
	}

	// Marking runs even if ctx ended meanwhile: the rows are enqueued, and
	// recording that spares a re-send.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	b := &pgx.Batch{}
	if len(sent) > 0 {
		b.Queue(`UPDATE `+t+` SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1)`, sent)
	}
	queueDead(b, t, dead)
	if failErr != nil {
		b.Queue(`UPDATE `+t+` SET attempts = attempts + 1, last_error = $2 WHERE id = $1`, failed, failErr.Error())
	}
	if b.Len() > 0 {
		if err := tx.SendBatch(mctx, b).Close(); err != nil {
			outboxErrors.Inc()
			return len(batch), fmt.Errorf("mark %d sent: %w", len(sent), err)
		}
	}
	if err := tx.Commit(mctx); err != nil {
		outboxErrors.Inc()
		return len(batch), fmt.Errorf("commit: %w", err)
	}
	outboxRelayed.Add(float64(len(sent)))
	if len(sent) > 0 {
		r.opts.logger.Debug("outbox rows relayed", "count", len(sent), "first_id", sent[0], "last_id", sent[len(sent)-1])
	}
	return len(batch), failErr
}

// logDead reports a row given up on.
func (r *Relay) logDead(row *outboxRow, dr *deadRow) {
	outboxFailed.WithLabelValues(dr.reason).Inc()
	r.opts.logger.Error("outbox row is dead: not sending it", "outbox_id", dr.id,
		"notification_id", row.notificationID, "receiver_id", row.receiverID,
		"reason", dr.reason, "err", dr.err)
}

// queueDead adds marking dead rows to b.
func queueDead(b *pgx.Batch, t string, dead []deadRow) {
	if len(dead) == 0 {
		return
	}
	ids, msgs := make([]int64, len(dead)), make([]string, len(dead))
	for i, d := range dead {
		ids[i], msgs[i] = d.id, d.err
	}
	b.Queue(`UPDATE `+t+` o SET dead_at = now(), attempts = o.attempts + 1, last_error = d.msg
		FROM unnest($1::bigint[], $2::text[]) AS d(id, msg) WHERE o.id = d.id`, ids, msgs)
}

// send enqueues one row. It returns a deadRow if the row can never be sent,
// an error if it cannot be sent now; created is false when Redis already
// held a task with the same id (the notification is on its way).
func (r *Relay) send(ctx context.Context, row *outboxRow) (created bool, _ *deadRow, _ error) {
	// Rows may have been written by other means than EnqueueTx (plain SQL
	// from a producer in another language), so they are validated again, by
	// the same code, and their id must be the one notifyd derives.
	d, err := r.client.prepare(Notification{
		ReceiverID: row.receiverID.String(), EventType: row.eventType, IdempotencyKey: row.key,
		CallbackURL: row.callbackURL, Payload: row.payload,
	})
	if err != nil {
		return false, &deadRow{row.id, "invalid", err.Error()}, nil
	}
	if d.ID != row.notificationID {
		return false, &deadRow{row.id, "invalid", fmt.Sprintf("notification_id %s is not the id derived from receiver_id and idempotency_key (%s)", row.notificationID, d.ID)}, nil
	}
	err = r.client.checkReceiver(ctx, d.ReceiverID)
	switch {
	case errors.Is(err, ErrUnknownReceiver):
		return false, &deadRow{row.id, "unknown_receiver", err.Error()}, nil
	case errors.Is(err, ErrReceiverInactive):
		return false, &deadRow{row.id, "inactive_receiver", err.Error()}, nil
	case errors.Is(err, ErrRegistryUnavailable):
		outboxFailed.WithLabelValues("registry_unavailable").Inc()
		return false, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	case err != nil:
		outboxFailed.WithLabelValues("redis").Inc()
		return false, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	}
	if err := r.client.checkCallbackHost(ctx, d); errors.Is(err, ErrCallbackHostNotAllowed) {
		return false, &deadRow{row.id, "callback_host", err.Error()}, nil
	} else if err != nil {
		return false, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	}
	// The producer handed the notification in when it wrote the row; the
	// queueing-delay metric then includes the time spent in the outbox.
	d.EnqueuedAt = row.createdAt.UTC()
	created, err = r.client.enqueue(ctx, d)
	if err != nil {
		outboxFailed.WithLabelValues("redis").Inc()
		return false, nil, fmt.Errorf("outbox row %d: %w", row.id, err)
	}
	return created, nil, nil
}

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
