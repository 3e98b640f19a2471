package scheduler

import (
	"context"
	"time"

	"github.com/notifyd/notifyd/internal/store"
)

// SummaryResult is one day's snapshot as the summary job stored it.
type SummaryResult struct {
	// Day is midnight UTC of the summarised day.
	Day time.Time
	// Receivers has one row per receiver with notifications created that
	// day, worst failure rate first.
	Receivers []store.ReceiverSummary
	// Total adds them up (its ReceiverID is zero).
	Total store.ReceiverSummary
	// Skipped: another instance was running the job.
	Skipped  bool
	Duration time.Duration
}

// RunSummary computes and stores yesterday's (UTC, by the database clock)
// summary; see RunSummaryFor.
func (s *Scheduler) RunSummary(ctx context.Context) (SummaryResult, error) {
	now, err := s.store.Now(ctx)
	if err != nil {
		s.logger.Error("scheduler job failed to start", "job", JobSummary, "err", err)
		return SummaryResult{}, err
	}
	return s.RunSummaryFor(ctx, now.UTC().AddDate(0, 0, -1))
}

// RunSummaryFor computes the snapshot of the UTC day containing day for
// every receiver (counts of the notifications created that day by their
// current status, failure rate, attempts and their latency), stores it in
// receiver_daily_summaries (replacing an earlier snapshot of that day) and
// logs one line per receiver and one for the total.
func (s *Scheduler) RunSummaryFor(ctx context.Context, day time.Time) (SummaryResult, error) {
	res := SummaryResult{Day: time.Date(day.UTC().Year(), day.UTC().Month(), day.UTC().Day(), 0, 0, 0, 0, time.UTC)}
	skipped, took, err := s.locked(ctx, JobSummary, lockSummary, func(ctx context.Context) ([]any, error) {
		rows, err := s.store.SaveDailySummaries(ctx, res.Day)
		if err != nil {
			return nil, err
		}
		res.Receivers = rows
		res.Total = total(rows)
		date := res.Day.Format(time.DateOnly)
		for i := range rows {
			r := &rows[i]
			s.logger.Info("receiver daily summary", append([]any{"day", date, "receiver_id", r.ReceiverID, "receiver", r.ReceiverName},
				summaryAttrs(r)...)...)
		}
		return append([]any{"day", date, "receivers", len(rows)}, summaryAttrs(&res.Total)...), nil
	})
	res.Skipped, res.Duration = skipped, took
	return res, err
}

// summaryDone reports whether yesterday's snapshot exists.
func (s *Scheduler) summaryDone(ctx context.Context) (bool, error) {
	now, err := s.store.Now(ctx)
	if err != nil {
		return false, err
	}
	return s.store.HasDailySummaries(ctx, now.UTC().AddDate(0, 0, -1))
}

func total(rows []store.ReceiverSummary) store.ReceiverSummary {
	var t store.ReceiverSummary
	var sumMS float64
	for _, r := range rows {
		t.Delivered += r.Delivered
		t.Failed += r.Failed
		t.Pending += r.Pending
		t.Cancelled += r.Cancelled
		t.Attempts += r.Attempts
		if r.AvgAttemptMS != nil {
			sumMS += *r.AvgAttemptMS * float64(r.Attempts)
		}
	}
	if t.Delivered+t.Failed > 0 {
		rate := float64(t.Failed) / float64(t.Delivered+t.Failed)
		t.FailureRate = &rate
	}
	if t.Attempts > 0 {
		avg := sumMS / float64(t.Attempts)
		t.AvgAttemptMS = &avg
	}
	// A p95 does not add up across receivers; the total has none.
	return t
}

func summaryAttrs(r *store.ReceiverSummary) []any {
	return []any{"delivered", r.Delivered, "failed", r.Failed, "pending", r.Pending, "cancelled", r.Cancelled,
		"failure_rate", floatOrNil(r.FailureRate), "attempts", r.Attempts,
		"avg_attempt_ms", floatOrNil(r.AvgAttemptMS), "p95_attempt_ms", floatOrNil(r.P95AttemptMS)}
}

// floatOrNil keeps absent values absent in the log (null in JSON) instead of
// logging a pointer.
func floatOrNil(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}
