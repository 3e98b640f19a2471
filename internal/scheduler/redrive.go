package scheduler

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

// RedriveResult is what one re-drive run did.
type RedriveResult struct {
	// Scanned overdue pending notifications.
	Scanned int
	// Enqueued: their task was missing from Redis and is queued again.
	Enqueued int
	// AlreadyQueued: their task was in Redis (queued, scheduled, running or
	// waiting for an Asynq retry); nothing was added.
	AlreadyQueued int
	// Finalized: pending with no automatic attempt left (a crash between
	// the last attempt and its status), now marked failed.
	Finalized int
	// Skipped: another instance was running the job.
	Skipped  bool
	Duration time.Duration
}

// exhaustedReason is the last_error of notifications the re-drive finalizes.
const exhaustedReason = "marked failed by the re-drive job: pending with all automatic attempts made"

// RunRedrive looks at every pending notification whose next attempt was due
// more than the grace ago and makes sure the task for that attempt is in
// Redis. Task ids are deterministic ("<id>:<attempt>") and Asynq refuses a
// second task with a live id; a page is queued in batch tasks whose
// members carry markers under those ids (internal/enqueue), so a task that
// exists, alone or in a batch, is not queued again by a batch. (A page's
// lone member, written as its own task, is guarded by its id only.)
//
// Two races are harmless by design. A worker may record the attempt between
// our read and our enqueue; the task we add then names an attempt already on
// record, and the worker's stale-task check drops it. And a task that was
// running when Redis lost it is re-queued once the grace has passed; if the
// running attempt is recorded first the same check drops ours, otherwise the
// receiver may get that attempt twice (at-least-once).
func (s *Scheduler) RunRedrive(ctx context.Context) (RedriveResult, error) {
	var res RedriveResult
	skipped, took, err := s.locked(ctx, JobRedrive, lockRedrive, func(ctx context.Context) ([]any, error) {
		err := s.redrive(ctx, &res)
		return []any{"scanned", res.Scanned, "enqueued", res.Enqueued, "already_queued", res.AlreadyQueued,
			"finalized", res.Finalized}, err
	})
	res.Skipped, res.Duration = skipped, took
	return res, err
}

func (s *Scheduler) redrive(ctx context.Context, res *RedriveResult) error {
	now, err := s.store.Now(ctx)
	if err != nil {
		return err
	}
	// Fixed for the run, so that notifications coming due while it runs
	// do not keep it going.
	cutoff := now.Add(-s.cfg.RedriveGrace)
	var afterDue time.Time
	var afterID uuid.UUID
	for {
		batch, err := s.store.OverduePending(ctx, cutoff, afterDue, afterID, s.cfg.RedriveBatch)
		if err != nil {
			return err
		}
		var exhausted []uuid.UUID
		var due []*store.Notification
		for _, n := range batch {
			res.Scanned++
			if n.Attempts >= n.MaxAttempts {
				exhausted = append(exhausted, n.ID)
				continue
			}
			due = append(due, n)
		}
		if err := s.enqueuePage(ctx, due, res); err != nil {
			return err
		}
		finalized, err := s.store.FailExhausted(ctx, exhausted, exhaustedReason)
		if err != nil {
			return err
		}
		res.Finalized += int(finalized)
		metrics.Redriven.WithLabelValues("finalized").Add(float64(finalized))
		if finalized > 0 {
			s.logger.Warn("re-drive: marked failed pending notifications without attempts left", "count", finalized)
		}
		if len(batch) < s.cfg.RedriveBatch {
			return nil
		}
		last := batch[len(batch)-1]
		afterDue, afterID = *last.NextAttemptAt, last.ID
	}
}

// enqueuePage queues the tasks for the next automatic attempts of ns (all
// overdue: due now) and counts in res which were missing and which a task
// in Redis already held. With a producer the page goes in batch tasks
// (internal/enqueue: a member whose task, or whose batch's marker, is live
// is AlreadyQueued and nothing is written for it); the members that could
// not be written fail the run, after the others are counted.
func (s *Scheduler) enqueuePage(ctx context.Context, ns []*store.Notification, res *RedriveResult) error {
	if len(ns) == 0 {
		return nil
	}
	ds := make([]*tasks.Deliver, len(ns))
	for i, n := range ns {
		ds[i] = redriveTask(n)
	}
	var results []enqueue.Result
	if s.producer != nil {
		results, _ = s.producer.EnqueueMany(ctx, ds)
	} else {
		results = s.enqueueEach(ctx, ns, ds)
	}
	var firstErr error
	for i, r := range results {
		switch {
		case r.Err != nil:
			firstErr = cmp.Or(firstErr, r.Err)
			continue
		case r.Status == enqueue.Queued:
			res.Enqueued++
			s.logger.Debug("re-drive: task was missing, queued again", "notification_id", ns[i].ID, "attempt", ds[i].Attempt)
		default:
			// AlreadyQueued, or a Conflict: a live task holds the id with
			// other content (the worker compares it with the row).
			res.AlreadyQueued++
		}
		metrics.Redriven.WithLabelValues(redriveLabel(r.Status)).Inc()
	}
	return firstErr
}

func redriveLabel(st enqueue.Status) string {
	if st == enqueue.Queued {
		return "enqueued"
	}
	return "already_queued"
}

// redriveTask is the task for n's next automatic attempt.
func redriveTask(n *store.Notification) *tasks.Deliver {
	d := &tasks.Deliver{ID: n.ID, ReceiverID: n.ReceiverID, EventType: n.EventType, IdempotencyKey: n.IdempotencyKey,
		Payload: n.Payload, EnqueuedAt: n.CreatedAt, Attempt: n.Attempts + 1}
	if n.CallbackURL != nil {
		d.CallbackURL = *n.CallbackURL
	}
	return d
}

// enqueueEach queues ds one by one at their due times, as tasks of their
// own (no Config.Redis), stopping at the first failure.
func (s *Scheduler) enqueueEach(ctx context.Context, ns []*store.Notification, ds []*tasks.Deliver) []enqueue.Result {
	out := make([]enqueue.Result, len(ds))
	for i, d := range ds {
		// The probe hides s.queue's shard count from Schedule: d carries it.
		d.QueueShards = tasks.ShardsOf(s.queue)
		probe := conflictProbe{Enqueuer: s.queue}
		if err := tasks.Schedule(ctx, &probe, s.cfg.TaskKeys, *d, d.Attempt, *ns[i].NextAttemptAt); err != nil {
			for j := i; j < len(out); j++ {
				out[j].Err = err
			}
			return out
		}
		out[i].Status = enqueue.Queued
		if probe.conflict {
			out[i].Status = enqueue.AlreadyQueued
		}
	}
	return out
}

// conflictProbe remembers whether the last enqueue found the task id taken;
// tasks.Schedule treats that as success, which it is, but the re-drive
// counts it separately.
type conflictProbe struct {
	tasks.Enqueuer
	conflict bool
}

func (p *conflictProbe) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := p.Enqueuer.EnqueueContext(ctx, t, opts...)
	p.conflict = errors.Is(err, asynq.ErrTaskIDConflict)
	return info, err
}
