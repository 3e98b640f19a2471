package scheduler

import (
	"context"
	"time"

	"github.com/notifyd/notifyd/internal/metrics"
)

// RetentionResult is what one retention run deleted.
type RetentionResult struct {
	// Cutoff: terminal notifications created before it were deleted.
	Cutoff        time.Time
	Notifications int64
	Attempts      int64
	// AuditEvents: audit_events rows older than Cutoff deleted.
	AuditEvents int64
	// Batches is the number of DELETE statements run on notifications.
	Batches int
	// Skipped: another instance was running the job.
	Skipped  bool
	Duration time.Duration
}

// RunRetention deletes the delivered, failed and cancelled notifications
// created more than the retention ago, with their attempts, and then the
// audit events older than the same cut-off, in batches of
// RetentionBatch separated by RetentionPause, until none is left or ctx ends.
// Each batch is its own short transaction, so the job never holds many locks
// for long; pending notifications are never deleted, however old.
func (s *Scheduler) RunRetention(ctx context.Context) (RetentionResult, error) {
	var res RetentionResult
	skipped, took, err := s.locked(ctx, JobRetention, lockRetention, func(ctx context.Context) ([]any, error) {
		err := s.retention(ctx, &res)
		if err == nil {
			err = s.auditRetention(ctx, &res)
		}
		return []any{"cutoff", res.Cutoff, "notifications_deleted", res.Notifications, "attempts_deleted", res.Attempts,
			"audit_events_deleted", res.AuditEvents, "batches", res.Batches}, err
	})
	res.Skipped, res.Duration = skipped, took
	return res, err
}

func (s *Scheduler) retention(ctx context.Context, res *RetentionResult) error {
	now, err := s.store.Now(ctx)
	if err != nil {
		return err
	}
	res.Cutoff = now.Add(-s.cfg.Retention)
	return s.inBatches(ctx, func() (int64, error) {
		n, a, err := s.store.DeleteExpired(ctx, res.Cutoff, s.cfg.RetentionBatch)
		if err != nil {
			return 0, err
		}
		res.Batches++
		res.Notifications += n
		res.Attempts += a
		metrics.RetentionDeleted.WithLabelValues("notifications").Add(float64(n))
		metrics.RetentionDeleted.WithLabelValues("attempts").Add(float64(a))
		return n, nil
	})
}

// auditRetention deletes audit events older than res.Cutoff in batches, like
// retention does notifications.
func (s *Scheduler) auditRetention(ctx context.Context, res *RetentionResult) error {
	return s.inBatches(ctx, func() (int64, error) {
		n, err := s.store.DeleteAuditEventsBefore(ctx, res.Cutoff, s.cfg.RetentionBatch)
		if err != nil {
			return 0, err
		}
		res.AuditEvents += n
		metrics.RetentionDeleted.WithLabelValues("audit_events").Add(float64(n))
		return n, nil
	})
}

// inBatches runs one deleting batch after another, a pause apart, until a
// batch deletes fewer rows than a full one: then nothing is left but rows
// locked by someone else, which the next run will get.
func (s *Scheduler) inBatches(ctx context.Context, batch func() (int64, error)) error {
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		n, err := batch()
		if err != nil {
			return err
		}
		if n < int64(s.cfg.RetentionBatch) {
			return nil
		}
		pause.Reset(s.cfg.RetentionPause)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pause.C:
		}
	}
}
