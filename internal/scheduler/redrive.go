package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

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
// second task with a live id, so a task that exists is never duplicated.
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
		for _, n := range batch {
			res.Scanned++
			if n.Attempts >= n.MaxAttempts {
				exhausted = append(exhausted, n.ID)
				continue
			}
			queued, err := s.enqueue(ctx, n)
			if err != nil {
				return err
			}
			if queued {
				res.Enqueued++
				metrics.Redriven.WithLabelValues("enqueued").Inc()
				s.logger.Debug("re-drive: task was missing, queued again", "notification_id", n.ID, "attempt", n.Attempts+1)
			} else {
				res.AlreadyQueued++
				metrics.Redriven.WithLabelValues("already_queued").Inc()
			}
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

// enqueue queues the task for n's next automatic attempt at its due time
// and reports whether it was missing (false: a task with its id is in Redis).
func (s *Scheduler) enqueue(ctx context.Context, n *store.Notification) (queued bool, err error) {
	d := tasks.Deliver{ID: n.ID, ReceiverID: n.ReceiverID, EventType: n.EventType, IdempotencyKey: n.IdempotencyKey,
		Payload: n.Payload, EnqueuedAt: n.CreatedAt, QueueShards: tasks.ShardsOf(s.queue)}
	if n.CallbackURL != nil {
		d.CallbackURL = *n.CallbackURL
	}
	// The probe hides s.queue's shard count from Schedule: d carries it.
	probe := conflictProbe{Enqueuer: s.queue}
	if err := tasks.Schedule(ctx, &probe, s.cfg.TaskKeys, d, n.Attempts+1, *n.NextAttemptAt); err != nil {
		return false, err
	}
	return !probe.conflict, nil
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
