package scheduler

import (
	"context"
	"time"

	"github.com/notifyd/notifyd/internal/metrics"
)

// Gauges is what one gauges run read.
type Gauges struct {
	// Notifications by status (see store.NotificationCounts for which are
	// exact and which estimated).
	Notifications map[string]int64
	// Receivers by state.
	Receivers map[string]int64
	// OldestDue is how long the most overdue pending notification has been
	// due.
	OldestDue time.Duration
}

// RunGauges refreshes the gauges of what the database holds
// (notifyd_notifications, notifyd_receivers, notifyd_oldest_pending_seconds).
// It takes no lock: it only reads, and every scheduler replica keeps its
// own gauges current, as Prometheus scrapes each of them. Its statements
// read indexes and statistics, never the whole notifications table.
func (s *Scheduler) RunGauges(ctx context.Context) (Gauges, error) {
	start := time.Now()
	g, err := s.readGauges(ctx)
	took := time.Since(start)
	metrics.JobDuration.WithLabelValues(JobGauges).Observe(took.Seconds())
	if err != nil {
		metrics.JobRuns.WithLabelValues(JobGauges, "error").Inc()
		s.logger.Error("scheduler job failed", "job", JobGauges, "duration", took, "err", err)
		return g, err
	}
	for status, n := range g.Notifications {
		metrics.Notifications.WithLabelValues(status).Set(float64(n))
	}
	for state, n := range g.Receivers {
		metrics.Receivers.WithLabelValues(state).Set(float64(n))
	}
	metrics.OldestPending.Set(g.OldestDue.Seconds())
	metrics.JobRuns.WithLabelValues(JobGauges, "ok").Inc()
	metrics.JobLastSuccess.WithLabelValues(JobGauges).SetToCurrentTime()
	// Every 30 s on every replica: routine, so at debug.
	s.logger.Debug("scheduler job finished", "job", JobGauges, "duration", took,
		"notifications", g.Notifications, "receivers", g.Receivers, "oldest_due", g.OldestDue)
	return g, nil
}

func (s *Scheduler) readGauges(ctx context.Context) (Gauges, error) {
	var g Gauges
	var err error
	if g.Notifications, err = s.store.NotificationCounts(ctx, metrics.NotificationsCountCap); err != nil {
		return g, err
	}
	if g.Receivers, err = s.store.ReceiverCounts(ctx); err != nil {
		return g, err
	}
	g.OldestDue, err = s.store.OldestDue(ctx)
	return g, err
}
