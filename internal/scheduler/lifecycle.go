package scheduler

import (
	"context"
	"time"

	"github.com/notifyd/notifyd/internal/lifecycle"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// LifecycleResult is what one lifecycle run did.
type LifecycleResult struct {
	// Transitions made, in order (failing, disabled, recovered).
	Transitions []store.Transition
	// Events recorded (and queued) to announce them.
	Events int
	// FailedPending: pending notifications of the receivers disabled in
	// this run, now failed with receiver_disabled.
	FailedPending int64
	// Receivers per health state after the run.
	Receivers map[string]int64
	Skipped   bool
	Duration  time.Duration
}

// disableBatch is how many pending notifications of a disabled receiver
// one statement fails.
const disableBatch = 1000

// RunLifecycle judges every receiver's health from its run of failed
// attempts (receivers.failing_since, kept by the workers' recorder):
// failing after FailingAfter, disabled after AutoDisableAfter (their
// pending notifications then fail with receiver_disabled), active again
// (recovered) once a failing receiver's run of failures ends. Each change
// is announced by an operational event, recorded with it in one
// transaction, then queued. It refreshes the receivers-by-state gauge.
func (s *Scheduler) RunLifecycle(ctx context.Context) (LifecycleResult, error) {
	var res LifecycleResult
	skipped, took, err := s.locked(ctx, JobLifecycle, lockLifecycle, func(ctx context.Context) ([]any, error) {
		err := s.lifecycle(ctx, &res)
		return []any{"transitions", len(res.Transitions), "events", res.Events, "failed_pending", res.FailedPending,
			"receivers", res.Receivers}, err
	})
	res.Skipped, res.Duration = skipped, took
	return res, err
}

func (s *Scheduler) lifecycle(ctx context.Context, res *LifecycleResult) error {
	now, err := s.store.Now(ctx)
	if err != nil {
		return err
	}
	th := store.Thresholds{FailingAfter: s.cfg.FailingAfter, DisableAfter: s.cfg.AutoDisableAfter}
	moves, events, err := s.store.ApplyLifecycle(ctx, now, th, lifecycle.Events{Defaults: s.cfg.Retry}.Make)
	if err != nil {
		return err
	}
	res.Transitions, res.Events = moves, len(events)
	for _, t := range moves {
		s.logTransition(t)
	}
	// A disabled receiver's pending notifications fail before its event is
	// queued: whoever reacts to receiver.disabled finds them failed. The
	// events are on record already; if failing them errs, they still go out.
	failErr := s.failPendingOfDisabled(ctx, moves, res)
	if err := lifecycle.Queue(ctx, s.queue, s.cfg.TaskKeys, events); err != nil {
		metrics.InfraErrors.WithLabelValues("redis").Inc()
		s.logger.Warn("lifecycle: queueing events failed; the re-drive job will queue them", "err", err)
	}
	if failErr != nil {
		return failErr
	}
	// The gauges job refreshes this too; a transition shows at once.
	res.Receivers, err = s.store.ReceiverCounts(ctx)
	if err != nil {
		return err
	}
	for state, n := range res.Receivers {
		metrics.Receivers.WithLabelValues(state).Set(float64(n))
	}
	return nil
}

// failPendingOfDisabled fails the pending notifications of every receiver
// that moves disabled, in batches of disableBatch.
func (s *Scheduler) failPendingOfDisabled(ctx context.Context, moves []store.Transition, res *LifecycleResult) error {
	for _, t := range moves {
		if t.Event != store.EventDisabled {
			continue
		}
		for {
			n, err := s.store.FailPendingOfDisabled(ctx, t.Receiver.ID, disableBatch)
			if err != nil {
				return err
			}
			res.FailedPending += n
			metrics.DisabledFailed.WithLabelValues("job").Add(float64(n))
			metrics.Terminal.WithLabelValues(store.StatusFailed).Add(float64(n))
			if n == 0 {
				break
			}
		}
	}
	return nil
}

// logTransition logs and counts one change: a warning when a receiver gets
// worse (the operator receiver's own troubles are only here: nothing about
// it is sent to it).
func (s *Scheduler) logTransition(t store.Transition) {
	metrics.ReceiverTransitions.WithLabelValues(t.Event).Inc()
	r := t.Receiver
	attrs := []any{"event", t.Event, "receiver_id", r.ID, "receiver_name", r.Name, "from", t.From, "status", r.Status,
		"failing_since", r.FailingSince, "operator_receiver", r.Operator}
	if t.Event == store.EventRecovered {
		s.logger.Info("receiver recovered", attrs...)
		return
	}
	if r.DisabledReason != "" {
		attrs = append(attrs, "reason", r.DisabledReason)
	}
	s.logger.Warn("receiver health worsened", attrs...)
}
