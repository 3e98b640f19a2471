package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// RetryResult is scenario 4: actual minus planned start of each retry.
type RetryResult struct {
	Notifications int       `json:"notifications"`
	Retries       int       `json:"retries"`
	Intervals     []string  `json:"intervals"`
	MeanMS        float64   `json:"mean_error_ms"`
	MinMS         float64   `json:"min_error_ms"`
	MaxMS         float64   `json:"max_error_ms"`
	MaxAbsMS      float64   `json:"max_abs_error_ms"`
	P99AbsMS      float64   `json:"p99_abs_error_ms"`
	PerRetry      []float64 `json:"mean_error_ms_by_retry"`
}

func (b *bench) retry(ctx context.Context) error {
	cfg := b.cfg
	c, err := b.startNotifyd(ctx)
	if err != nil {
		return err
	}
	defer b.stopChild(c)
	rs := b.failReceivers
	start := time.Now()
	if err := b.enqueueAll(ctx, cfg.retryN, func(i int) (benchReceiver, string) {
		return rs[i%len(rs)], "rt-" + strconv.Itoa(i)
	}); err != nil {
		return err
	}
	var schedule time.Duration
	for _, d := range cfg.retryIntervals {
		schedule += d
	}
	if _, err := b.waitDelivered(ctx, "retry", ids(rs), 0, cfg.retryN, start, 3*schedule+2*time.Minute); err != nil {
		return err
	}
	b.stopChild(c)
	errs, byRetry, err := b.retryErrors(ctx, ids(rs))
	if err != nil {
		return err
	}
	if len(errs) == 0 {
		return errors.New("no retries on record")
	}
	r := summariseRetries(errs, byRetry)
	r.Notifications, r.Intervals = cfg.retryN, durStrings(cfg.retryIntervals)
	b.res.Retry = r
	b.prog.done("retry: %d retries, error mean %s, max |error| %s", r.Retries, fmtMS(r.MeanMS), fmtMS(r.MaxAbsMS))
	met, text := verdict(r.MaxAbsMS, targetRetryErrMS, false)
	b.target("retry_error", met, text)
	b.rows = append(b.rows, row{"4 retry precision",
		fmt.Sprintf("actual − planned start over %d retries (%s): mean %s, min %s, max %s, p99 |err| %s", r.Retries, strings.Join(r.Intervals, ","),
			fmtMS(r.MeanMS), fmtMS(r.MinMS), fmtMS(r.MaxMS), fmtMS(r.P99AbsMS)),
		"|error| ≤ 1 s", text})
	return nil
}

// retryErrors reads the attempts of receivers' notifications and returns
// each retry's actual minus planned start, all together and by retry.
func (b *bench) retryErrors(ctx context.Context, receivers []uuid.UUID) (all []time.Duration, byRetry [][]time.Duration, err error) {
	intervals := b.cfg.retryIntervals
	rows, err := b.st.Pool().Query(ctx, `
		SELECT a.notification_id, a.attempt_no, a.started_at, a.duration_ms
		FROM delivery_attempts a JOIN notifications n ON n.id = a.notification_id
		WHERE n.receiver_id = ANY($1) AND a.attempt_no > 0
		ORDER BY a.notification_id, a.attempt_no`, receivers)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	type att struct {
		id      uuid.UUID
		no      int16
		started time.Time
		ms      int32
	}
	var prev att
	byRetry = make([][]time.Duration, len(intervals))
	for rows.Next() {
		var a att
		if err := rows.Scan(&a.id, &a.no, &a.started, &a.ms); err != nil {
			return nil, nil, err
		}
		if a.id == prev.id && a.no == prev.no+1 && int(prev.no) <= len(intervals) {
			// What the worker planned after attempt prev: its start plus
			// its duration plus the interval (no jitter with explicit
			// intervals). duration_ms is stored truncated to the
			// millisecond, so the plan is reconstructed up to 1 ms early.
			planned := prev.started.Add(time.Duration(prev.ms)*time.Millisecond + intervals[prev.no-1])
			e := a.started.Sub(planned)
			all = append(all, e)
			byRetry[prev.no-1] = append(byRetry[prev.no-1], e)
		}
		prev = a
	}
	return all, byRetry, rows.Err()
}

// summariseRetries gives the figures of errs (at least one).
func summariseRetries(errs []time.Duration, byRetry [][]time.Duration) *RetryResult {
	r := &RetryResult{Retries: len(errs)}
	minE, maxE := errs[0], errs[0]
	abs := make([]time.Duration, len(errs))
	for i, e := range errs {
		minE, maxE = min(minE, e), max(maxE, e)
		abs[i] = max(e, -e)
	}
	r.MeanMS, r.MinMS, r.MaxMS = distOf(errs).Mean, ms(minE), ms(maxE)
	absDist := distOf(abs)
	r.MaxAbsMS, r.P99AbsMS = absDist.Max, absDist.P99
	for _, es := range byRetry {
		if len(es) > 0 {
			r.PerRetry = append(r.PerRetry, distOf(es).Mean)
		}
	}
	return r
}
