package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/notifyd/notifyd/internal/tasks"
)

// CeilingResult is scenario 2: the same N as no-op tasks.
type CeilingResult struct {
	N         int       `json:"n"`
	Seconds   float64   `json:"seconds"`
	PerSecond float64   `json:"processed_per_s"`
	Ratio     *float64  `json:"notifyd_ratio"` // throughput / ceiling
	CPU       *CPUSplit `json:"cpu"`
	// OneQueue is the same run with the consumer on a single queue instead
	// of notifyd's three weighted ones: Asynq's fetch loop makes one Redis
	// round trip per queue it tries, and the manual and retry queues are
	// usually empty, so the layout itself costs part of the ceiling.
	OneQueuePerSecond float64 `json:"one_queue_processed_per_s"`
	// Every repetition (--repeat); the figures above are the medians.
	Runs         []float64 `json:"runs_per_s"`
	OneQueueRuns []float64 `json:"one_queue_runs_per_s"`
}

func (b *bench) ceiling(ctx context.Context) error {
	cfg := b.cfg
	type noop struct {
		secs  float64
		split *CPUSplit
	}
	var runs, oneRuns []noop
	var rates, oneRates []float64
	for rep := range cfg.repeat {
		label, oneLabel := "ceiling", "ceiling, one queue"
		if cfg.repeat > 1 {
			label = fmt.Sprintf("ceiling (run %d of %d)", rep+1, cfg.repeat)
			oneLabel = fmt.Sprintf("ceiling, one queue (run %d of %d)", rep+1, cfg.repeat)
		}
		secs, split, err := b.noopRun(ctx, label, "notifyd")
		if err != nil {
			return err
		}
		runs, rates = append(runs, noop{secs, split}), append(rates, round(float64(cfg.n)/secs, 1))
		b.prog.done("%s: %s no-op tasks in %.2f s: %s", label, thousands(int64(cfg.n)), secs, fmtRate(float64(cfg.n)/secs))
		one, _, err := b.noopRun(ctx, oneLabel, "single")
		if err != nil {
			return err
		}
		oneRuns, oneRates = append(oneRuns, noop{secs: one}), append(oneRates, round(float64(cfg.n)/one, 1))
		b.prog.done("%s: %s no-op tasks in %.2f s: %s", oneLabel, thousands(int64(cfg.n)), one, fmtRate(float64(cfg.n)/one))
	}
	// The median run is the one with the median time.
	m := median(runs, func(r noop) float64 { return r.secs })
	one := median(oneRuns, func(r noop) float64 { return r.secs })
	r := &CeilingResult{N: cfg.n, Seconds: round(m.secs, 3), PerSecond: round(float64(cfg.n)/m.secs, 1), CPU: m.split,
		OneQueuePerSecond: round(float64(cfg.n)/one.secs, 1), Runs: rates, OneQueueRuns: oneRates}
	figure := fmt.Sprintf("%s no-op Asynq tasks/s (same N, concurrency %d, notifyd's queues)%s", strings.TrimSuffix(fmtRate(r.PerSecond), "/s"), cfg.concurrency, runsNote(rates))
	if tp := b.res.Throughput; tp != nil {
		ratio := round(tp.PerSecond/r.PerSecond, 3)
		r.Ratio = &ratio
		met, text := verdict(ratio, targetCeilingRatio, true)
		b.target("ceiling_ratio", met, text)
		b.rows = append(b.rows, row{"2 ceiling", figure + fmt.Sprintf("; notifyd = %.0f%% of it", ratio*100), "≥ 50 %", text})
	} else {
		b.rows = append(b.rows, row{"2 ceiling", figure, "≥ 50 % (needs throughput)", "-"})
	}
	b.rows = append(b.rows,
		row{"  cpu: % of a core (share)", strings.Replace(r.CPU.String(), "notifyd", "no-op consumer", 1), "", ""},
		row{"  one queue", fmt.Sprintf("%s no-op tasks/s with a single queue (what notifyd's queue layout costs)%s", strings.TrimSuffix(fmtRate(r.OneQueuePerSecond), "/s"), runsNote(oneRates)), "", ""},
	)
	b.res.Ceiling = r
	return nil
}

// noopRun enqueues N tasks exactly as the Go client does while a no-op
// consumer with the worker's Asynq settings processes them; it returns the
// seconds from the first enqueue to the last task processed.
func (b *bench) noopRun(ctx context.Context, label, queues string) (float64, *CPUSplit, error) {
	cfg := b.cfg
	if err := b.resetQueue(ctx); err != nil {
		return 0, nil, err
	}
	c, err := b.startChild(ctx, "noop", "-redis-addr", cfg.redisAddr, "-redis-db", fmt.Sprint(cfg.redisDB),
		"-concurrency", fmt.Sprint(cfg.concurrency), "-queues", queues)
	if err != nil {
		return 0, nil, err
	}
	defer b.stopChild(c)
	rs := b.okReceivers
	before := b.sampler.snapshot()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var enqErr atomic.Value
	defer wg.Wait()
	for range cfg.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.n || ctx.Err() != nil || enqErr.Load() != nil {
					return
				}
				// Exactly the task the Go client enqueues for a notification.
				r, key := rs[i%len(rs)], "ceil-"+strconv.Itoa(i)
				d := tasks.Deliver{ID: tasks.NotificationID(r.ID, key), ReceiverID: r.ID, EventType: eventType,
					IdempotencyKey: key, Payload: b.payload(i), EnqueuedAt: time.Now().UTC(), Attempt: 1}
				t, err := d.Task()
				if err == nil {
					_, err = b.queue.EnqueueContext(ctx, t)
				}
				if err != nil {
					enqErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(max(5*time.Minute, time.Duration(cfg.n/200)*time.Second))
	for {
		var s struct {
			Processed int64 `json:"processed"`
			LastNS    int64 `json:"last_ns"`
		}
		resp, err := b.http.Get(c.ready["stats"])
		if err != nil {
			return 0, nil, err
		}
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil {
			return 0, nil, err
		}
		b.prog.update("%s: %s/%s no-op tasks processed, %s", label, thousands(s.Processed), thousands(int64(cfg.n)), fmtRate(float64(s.Processed)/time.Since(start).Seconds()))
		if s.Processed >= int64(cfg.n) {
			return time.Unix(0, s.LastNS).Sub(start).Seconds(), cpuDelta(before, b.sampler.snapshot()), nil
		}
		if err, _ := enqErr.Load().(error); err != nil {
			return 0, nil, fmt.Errorf("enqueue: %w", err)
		}
		if time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("only %d of %d no-op tasks processed", s.Processed, cfg.n)
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
