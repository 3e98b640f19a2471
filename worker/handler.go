package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/callbackhosts"
	"github.com/notifyd/notifyd/internal/lifecycle"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tasks"
)

// handler turns one task into at most one HTTP attempt, on record.
type handler struct {
	receivers      *receiverCache
	recorder       *recorder
	starter        *starter
	deliverer      *deliverer
	semaphore      *semaphore
	latency        *latencies
	breakers       *fleetBreakers // fleet-wide circuit (circuitstate.go)
	queue          tasks.Enqueuer
	failer         pendingFailer
	contents       contentStore      // conflict.go
	keys           *taskauth.Keyring // verifies tasks, seals retries; nil: unsigned
	logger         *slog.Logger
	defaultTimeout time.Duration
	maxTimeout     time.Duration

	// rdb announces offers to pull receivers' streams (pull.go).
	rdb redis.UniversalClient
	// deliveries is the worker-wide limit on deliveries at once: tasks and
	// batch members alike (batch.go).
	deliveries *deliveryLimit
	members    *batchMembers
	inspector  *asynq.Inspector // runs a late batch member's guard (batch.go)
}

// pendingFailer ends a pending notification that must not be attempted.
type pendingFailer interface {
	FailPending(ctx context.Context, id uuid.UUID, reason string) (bool, error)
	FailIfDisabled(ctx context.Context, n store.NewNotification, create bool) (disabled, changed bool, err error)
}

// delivery is one task on its way through the handler's steps.
type delivery struct {
	d  *tasks.Deliver
	rc *receiverConfig
	st store.DeliveryState
	// create is the notification when this attempt is the first to record
	// it (a Go client's task that Postgres has not seen yet).
	create *store.NewNotification
	res    attemptResult
	rec    store.AttemptRecord
	// own: one of the receiver's own operational events, sent to its
	// status_callback_url. It says nothing about the receiver's callback
	// URL, so it neither counts for the receiver's health or circuit nor
	// waits for them (lifecycle.IsOwnEvent).
	own bool
}

// ProcessTask implements asynq.Handler: a batch fans out (batch.go); a
// single task is delivered within the worker-wide delivery limit.
func (h *handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if t.Type() == tasks.TypeBatch {
		return h.processBatch(ctx, t)
	}
	d, err := h.open(t)
	if err != nil {
		return err
	}
	if err := h.deliveries.take(ctx); err != nil {
		// Stopping: back to the queue at once, for another worker.
		return &retryLater{after: 0, err: err}
	}
	defer h.deliveries.give()
	return h.deliver(ctx, d)
}

// deliver makes one notification's attempt: admit it, load its state, make
// the attempt, record it, schedule the next; all of it in one span
// (tracing.go), a child of the task's enqueue span.
func (h *handler) deliver(ctx context.Context, d *tasks.Deliver) (err error) {
	ctx, span := traceDelivery(ctx, d)
	defer func() { endDelivery(span, err) }()
	dv, err := h.admit(ctx, d)
	if dv == nil {
		return err // dropped, deferred or settled without an attempt
	}
	if proceed, err := h.load(ctx, dv); !proceed {
		return err
	}
	if proceed, err := h.attempt(ctx, dv); !proceed {
		return err
	}
	if err := h.record(ctx, dv); err != nil {
		return err
	}
	return h.schedule(ctx, dv)
}

// admit loads the receiver of an opened task; it drops what cannot or must
// not be delivered, fails what a disabled receiver must not get, and defers
// what the receiver's circuit holds back (nil delivery).
func (h *handler) admit(ctx context.Context, d *tasks.Deliver) (*delivery, error) {
	rc, err := h.receivers.get(ctx, d.ReceiverID)
	if errors.Is(err, store.ErrNotFound) {
		metrics.Dropped.WithLabelValues("unknown_receiver").Inc()
		h.logger.Error("dropping notification for unknown receiver", "notification_id", d.ID, "receiver_id", d.ReceiverID)
		return nil, fmt.Errorf("notification %s: receiver %s: %w", d.ID, d.ReceiverID, asynq.SkipRetry)
	}
	if err != nil {
		return nil, h.infra("postgres", fmt.Errorf("deliver %s: load receiver: %w", d.ID, err))
	}
	own := lifecycle.IsOwnEvent(rc.Receiver, d.EventType, d.CallbackURL)
	if rc.Status == store.ReceiverDisabled && !own && d.Attempt > 0 {
		if done, err := h.failDisabled(ctx, d, rc); done || err != nil {
			return nil, err
		}
		// Enabled since this worker cached it: deliver with what is stored.
		if rc, err = h.receivers.refresh(ctx, d.ReceiverID); err != nil {
			return nil, h.infra("postgres", fmt.Errorf("deliver %s: load receiver: %w", d.ID, err))
		}
	}
	// The status_callback_url is the admin's, like the callback URL itself:
	// callback_hosts restricts producers' overrides, not it.
	if err := callbackhosts.Allowed(rc.CallbackHosts, d.CallbackURL); err != nil && !own {
		return nil, h.refuseCallbackHost(ctx, d, err)
	}
	// An open circuit defers before anything else: during an outage every
	// task of the receiver comes through here, and a deferral should cost
	// the queue's round trips and no more. (Manual redeliveries go through:
	// someone asked for them.) Pull receivers are never called: no circuit.
	if d.Attempt > 0 && !own && !rc.Pull() {
		if ok, wait := h.breakers.allow(ctx, d.ReceiverID); !ok {
			metrics.Deferred.WithLabelValues("circuit_open").Inc()
			return nil, h.deferred(ctx, d, rc, &retryLater{after: wait + rand.N(time.Second), err: errCircuitOpen})
		}
	}
	return &delivery{d: d, rc: rc, own: own}, nil
}

// failDisabled ends an automatic attempt's notification whose receiver is
// disabled: failed with last error receiver_disabled, written failed at
// once if it is not on record yet (a Go client's or the outbox's), so the
// receiver finds it through the query API and gets it with recover once
// enabled. done is false when Postgres says the receiver is no longer
// disabled (this worker's copy of it is up to a second old).
func (h *handler) failDisabled(ctx context.Context, d *tasks.Deliver, rc *receiverConfig) (done bool, err error) {
	disabled, changed, err := h.failer.FailIfDisabled(ctx, *newNotification(d, rc), d.Attempt == 1)
	if err != nil {
		return false, h.infra("postgres", fmt.Errorf("deliver %s: %w", d.ID, err))
	}
	if !disabled {
		return false, nil
	}
	if changed {
		metrics.Terminal.WithLabelValues(store.StatusFailed).Inc()
		metrics.DisabledFailed.WithLabelValues("worker").Inc()
		h.logger.Info("notification failed: its receiver is disabled", "notification_id", d.ID, "receiver_id", d.ReceiverID)
	}
	return true, nil
}

// open checks the task's seal and its id. A task that fails either was not
// written by a notifyd producer holding the task key (or was altered in
// Redis): it is dropped, never delivered and never retried.
func (h *handler) open(t *asynq.Task) (*tasks.Deliver, error) {
	d, err := tasks.Open(h.keys, t.Payload())
	if err != nil {
		return nil, h.refuseUnopened("task", err)
	}
	if err := d.CheckID(); err != nil {
		return nil, h.refuse("id_mismatch", d, err)
	}
	return d, nil
}

// refuseUnopened drops a task or batch (what) whose payload did not open:
// unsigned, signed with no key of ours, or not decodable.
func (h *handler) refuseUnopened(what string, err error) error {
	switch {
	case errors.Is(err, taskauth.ErrUnsigned):
		return h.refuse("unsigned", nil, err)
	case errors.Is(err, taskauth.ErrUnknownKey), errors.Is(err, taskauth.ErrBadMAC):
		return h.refuse("bad_signature", nil, err)
	}
	metrics.Dropped.WithLabelValues("malformed").Inc()
	h.logger.Error("dropping malformed "+what, "err", err)
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// refuse drops a task that must not be delivered, counting it by reason.
// d is nil when the task could not be trusted enough to decode.
func (h *handler) refuse(reason string, d *tasks.Deliver, err error) error {
	metrics.Dropped.WithLabelValues(reason).Inc()
	attrs := []any{"reason", reason, "err", err}
	if d != nil {
		attrs = append(attrs, "notification_id", d.ID, "receiver_id", d.ReceiverID)
	}
	h.logger.Warn("dropping refused task", attrs...)
	return fmt.Errorf("refused task: %w: %w", err, asynq.SkipRetry)
}

// refuseCallbackHost drops a task whose callback override the receiver's
// callback_hosts do not allow. A notification on record with that override
// (the receiver restricted its hosts after it was accepted) is failed with
// last error callback_host_not_allowed, so that it ends instead of staying
// pending; the receiver still finds it through the query API.
func (h *handler) refuseCallbackHost(ctx context.Context, d *tasks.Deliver, err error) error {
	failed, ferr := h.failer.FailPending(ctx, d.ID, "callback_host_not_allowed")
	if ferr != nil {
		return h.infra("postgres", fmt.Errorf("deliver %s: %w", d.ID, ferr))
	}
	if failed {
		h.logger.Warn("notification failed: its callback override is outside the receiver's callback_hosts",
			"notification_id", d.ID, "receiver_id", d.ReceiverID)
	}
	return h.refuse("callback_host", d, err)
}

// load reads the notification's state and decides whether the task's
// attempt is the one due; if not, it settles the task (proceed false, and
// the error ProcessTask returns).
func (h *handler) load(ctx context.Context, dv *delivery) (proceed bool, err error) {
	d := dv.d
	st, found, err := h.starter.begin(ctx, d.ID)
	if err != nil {
		return false, h.infra("postgres", fmt.Errorf("deliver %s: %w", d.ID, err))
	}
	switch {
	case !found && d.Attempt == 1:
		// Not on record yet (the Go client enqueues straight to Redis): the
		// first attempt's record writes it.
		dv.create = newNotification(d, dv.rc)
		st = store.DeliveryState{Status: store.StatusPending, MaxAttempts: dv.create.MaxAttempts}
	case !found:
		// Only a first attempt may create a notification: a retry or a
		// manual redelivery whose notification is gone must not bring it
		// back as new.
		metrics.Dropped.WithLabelValues("notification_gone").Inc()
		h.logger.Warn("dropping task: its notification no longer exists (deleted by retention)",
			"notification_id", d.ID, "attempt", d.Attempt)
		return false, fmt.Errorf("notification %s gone: %w", d.ID, asynq.SkipRetry)
	}
	dv.st = st
	if found && mayConflict(d, &st) {
		if conflict, err := h.checkContent(ctx, d); conflict || err != nil {
			return false, err
		}
	}
	if d.Attempt == 0 {
		return false, h.manual(ctx, dv, st)
	}
	if st.Status != store.StatusPending {
		return false, nil // delivered, failed or cancelled already
	}
	if d.Attempt != st.Attempts+1 {
		// A stale or duplicate task (a crash between recording and
		// acknowledging, or a re-drive racing the worker): the attempt it
		// names is on record; make sure the one that is due is queued.
		return false, h.ensureNext(ctx, d, dv.rc, st)
	}
	if err := h.waitUntilDue(ctx, st.NextAttemptAt); err != nil {
		return false, err
	}
	if d.Attempt > 1 && st.NextAttemptAt != nil {
		metrics.RetryLateness.Observe(time.Since(*st.NextAttemptAt).Seconds())
	}
	return true, nil
}

// attempt makes the HTTP attempt within the receiver's concurrency limit
// and feeds its outcome to the latency tracker and the circuit breaker.
func (h *handler) attempt(ctx context.Context, dv *delivery) (proceed bool, err error) {
	if dv.rc.Pull() {
		observeFirstAttempt(dv)
		return h.offer(ctx, dv)
	}
	d := dv.d
	if !h.semaphore.acquireWithin(ctx, d.ReceiverID, h.latency.patience(d.ReceiverID)) {
		metrics.Deferred.WithLabelValues("receiver_busy").Inc()
		// A short wait, like waiting in the queue: no need to record a new
		// notification for it (see deferred).
		return false, &retryLater{after: h.latency.busyDelay(d.ReceiverID), err: errReceiverBusy}
	}
	observeFirstAttempt(dv)
	dv.res = h.send(ctx, d, dv.rc, createdAt(d, dv.st), d.Attempt)
	h.semaphore.release(d.ReceiverID, dv.res.Outcome == store.OutcomeTimeout)
	h.latency.observe(d.ReceiverID, dv.res.Duration)
	if dv.res.Outcome != store.OutcomeSuccess && ctx.Err() != nil {
		// Our side cut the attempt short (shutdown hands the task back), not
		// the receiver: record nothing, so that it costs no attempt; the
		// task is sent again.
		return false, fmt.Errorf("deliver %s: attempt %d cut short: %w", d.ID, d.Attempt, ctx.Err())
	}
	if !dv.own {
		h.breakers.record(ctx, d.ReceiverID, dv.res.Outcome)
	}
	return true, nil
}

// observeFirstAttempt measures, once per first attempt actually made (not
// per task run: a deferral runs the task again), how long the notification
// waited for it.
func observeFirstAttempt(dv *delivery) {
	if dv.d.Attempt == 1 && dv.st.Attempts == 0 {
		metrics.FirstAttemptDelay.Observe(time.Since(dv.d.EnqueuedAt).Seconds())
	}
}

// record writes the attempt and the notification's new status (with the
// next attempt's due time while it stays pending).
func (h *handler) record(ctx context.Context, dv *delivery) error {
	d, res := dv.d, &dv.res
	rec := store.AttemptRecord{Attempt: attemptRow(d, d.Attempt, res), Create: dv.create}
	// An offer to a pull receiver is not an answer of it (the receiver's
	// acknowledgement comes later, through the API): it says nothing about
	// the receiver's health, like its own operational events.
	if !dv.own && !dv.rc.Pull() {
		rec.HealthOf = d.ReceiverID
	}
	switch {
	case res.Outcome == store.OutcomeSuccess:
		rec.NewStatus = store.StatusDelivered
	case res.Outcome == store.OutcomeOffered:
		// Pending until the receiver acknowledges; the next offer (or,
		// after the last, the expiry) is due on the same schedule.
		rec.NewStatus = store.StatusPending
		rec.NextAttemptAt = res.Started.Add(dv.rc.policy.Delay(d.Attempt))
	case res.Outcome == store.OutcomeGone || d.Attempt >= dv.st.MaxAttempts:
		rec.NewStatus = store.StatusFailed
	default:
		rec.NewStatus = store.StatusPending
		delay := dv.rc.policy.Delay(d.Attempt)
		if res.RetryAfter > 0 {
			delay = retry.RetryAfter(delay, res.RetryAfter)
		}
		rec.NextAttemptAt = res.Started.Add(res.Duration + delay)
	}
	if err := h.recorder.Record(ctx, rec); err != nil {
		// The attempt was made; the recorder keeps trying to write it. Hand
		// the task back: the retry finds the attempt on record, or sends
		// again (at-least-once).
		return h.infra("postgres", fmt.Errorf("deliver %s: record attempt %d: %w", d.ID, d.Attempt, err))
	}
	if dv.create != nil {
		metrics.Accepted.WithLabelValues("queue").Inc()
	}
	if res.Outcome == store.OutcomeOffered {
		h.announce(ctx, d, d.Attempt)
	}
	dv.rec = rec
	return nil
}

// schedule finishes a notification that reached a final status, or queues
// its next attempt.
func (h *handler) schedule(ctx context.Context, dv *delivery) error {
	d, rec := dv.d, &dv.rec
	if rec.NewStatus != store.StatusPending {
		metrics.Terminal.WithLabelValues(rec.NewStatus).Inc()
		h.logger.Debug("notification finished", "notification_id", d.ID, "status", rec.NewStatus, "attempts", d.Attempt)
		return nil
	}
	next := dv.st
	next.Attempts, next.NextAttemptAt = d.Attempt, &rec.NextAttemptAt
	return h.ensureNext(ctx, d, dv.rc, next)
}

// deferred hands the task back for later without an attempt while the
// receiver's circuit is open. Once the receiver has stayed down past a
// failed probe (an outage can last hours), the first attempt of a
// notification that may exist only in Redis is recorded first, pending:
// what only Redis holds is lost if Redis restarts empty, and the re-drive
// job brings back from Postgres whatever is pending. During the first
// cool-down (30 s by default) the task waits in Redis like any queued task,
// which keeps a burst of deferrals cheap.
func (h *handler) deferred(ctx context.Context, d *tasks.Deliver, rc *receiverConfig, rl *retryLater) error {
	if d.Attempt != 1 || !h.breakers.prolonged(d.ReceiverID) {
		return rl
	}
	if _, found, err := h.starter.begin(ctx, d.ID); err != nil {
		return h.infra("postgres", fmt.Errorf("deliver %s: %w", d.ID, err))
	} else if found {
		return rl
	}
	create := newNotification(d, rc)
	rec := store.AttemptRecord{
		// No attempt: only the notification, unless it is on record already.
		Attempt:   store.Attempt{NotificationID: create.ID},
		NewStatus: store.StatusPending, NextAttemptAt: time.Now(), Create: create,
	}
	if err := h.recorder.Record(ctx, rec); err != nil {
		return h.infra("postgres", fmt.Errorf("deliver %s: record before deferring: %w", create.ID, err))
	}
	metrics.Accepted.WithLabelValues("queue").Inc()
	return rl
}

// manual makes a redelivery someone asked for. It is recorded with a
// negative number and does not touch the automatic schedule.
func (h *handler) manual(ctx context.Context, dv *delivery, st store.DeliveryState) error {
	d, rc := dv.d, dv.rc
	if st.Status == store.StatusCancelled {
		return nil
	}
	if rc.Pull() {
		return h.manualOffer(ctx, d)
	}
	res := h.send(ctx, d, rc, createdAt(d, st), 0)
	if res.Outcome != store.OutcomeSuccess && ctx.Err() != nil {
		// Cut short by our side, as in ProcessTask; the requeued task reuses
		// this number, so a recorded abort would hide its real answer.
		return fmt.Errorf("redeliver %s: cut short: %w", d.ID, ctx.Err())
	}
	// A manual redelivery's answer counts like any attempt: its success
	// closes the receiver's circuit fleet-wide (and ends a run of failures).
	rec := store.AttemptRecord{Attempt: attemptRow(d, -d.Manual, &res)}
	if !dv.own {
		h.breakers.record(ctx, d.ReceiverID, res.Outcome)
		rec.HealthOf = d.ReceiverID
	}
	if res.Outcome == store.OutcomeSuccess {
		rec.NewStatus = store.StatusDelivered
	}
	if err := h.recorder.Record(ctx, rec); err != nil {
		return h.infra("postgres", fmt.Errorf("redeliver %s: record: %w", d.ID, err))
	}
	return nil
}

func (h *handler) send(ctx context.Context, d *tasks.Deliver, rc *receiverConfig, created time.Time, attempt int) attemptResult {
	body, err := envelopeOf(d, created)
	if err != nil {
		return attemptResult{Started: time.Now(), Outcome: store.OutcomeFailure, Error: err.Error()}
	}
	url := d.CallbackURL
	if url == "" {
		url = rc.CallbackURL
	}
	timeout := h.defaultTimeout
	if rc.Timeout > 0 {
		timeout = min(rc.Timeout, h.maxTimeout)
	}
	res := h.deliverer.attempt(ctx, &attemptRequest{
		ID: d.ID.String(), URL: url, Body: body, Attempt: attempt,
		Signer: rc.signer, Timeout: timeout, SuccessBody: rc.SuccessBody,
	})
	metrics.Attempts.WithLabelValues(res.Outcome).Inc()
	metrics.AttemptDuration.Observe(res.Duration.Seconds())
	if res.Outcome != store.OutcomeSuccess {
		h.logger.Info("delivery attempt failed", "notification_id", d.ID, "receiver_id", d.ReceiverID,
			"attempt", attempt, "outcome", res.Outcome, "status", res.StatusCode, "err", res.Error)
	}
	return res
}

// newNotification is the notification d carries, as its first attempt
// records it.
func newNotification(d *tasks.Deliver, rc *receiverConfig) *store.NewNotification {
	return &store.NewNotification{
		ID: d.ID, ReceiverID: d.ReceiverID, EventType: d.EventType, IdempotencyKey: d.IdempotencyKey,
		CallbackURL: d.CallbackURL, Payload: d.Payload, MaxAttempts: rc.policy.MaxAttempts,
	}
}

// createdAt is the envelope's created_at: when the notification was handed
// to notifyd. Tasks carry it (the producer's enqueue time for the Go client
// and the outbox, the stored created_at for the HTTP ingest, re-drives and
// manual redeliveries), so that it does not change between automatic
// attempts although a Go client's notification is recorded only with its
// first attempt.
func createdAt(d *tasks.Deliver, st store.DeliveryState) time.Time {
	if d.EnqueuedAt.IsZero() {
		return st.CreatedAt
	}
	return d.EnqueuedAt
}

func attemptRow(d *tasks.Deliver, no int, res *attemptResult) store.Attempt {
	return store.Attempt{
		NotificationID: d.ID, AttemptNo: no, StartedAt: res.Started, Duration: res.Duration,
		StatusCode: res.StatusCode, Outcome: res.Outcome, Error: res.Error, ResponseBody: res.Body,
	}
}

// ensureNext queues the task for attempt st.Attempts+1 at its due time. A
// task with that id already in Redis means it is queued: nothing to do.
func (h *handler) ensureNext(ctx context.Context, d *tasks.Deliver, rc *receiverConfig, st store.DeliveryState) error {
	if st.Status != store.StatusPending || st.Attempts >= lastTask(rc, st) {
		return nil
	}
	due := time.Now()
	if st.NextAttemptAt != nil {
		due = *st.NextAttemptAt
	}
	if err := tasks.Schedule(ctx, h.queue, h.keys, *d, st.Attempts+1, due); err != nil {
		return h.infra("redis", fmt.Errorf("deliver %s: %w", d.ID, err))
	}
	return nil
}

func (h *handler) infra(dependency string, err error) error {
	metrics.InfraErrors.WithLabelValues(dependency).Inc()
	return err
}
