package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// noopResult is one run of the no-op consumer.
type noopResult struct {
	secs  float64
	split *CPUSplit
}

func (b *bench) ceiling(ctx context.Context) error {
	cfg := b.cfg
	var runs, oneRuns []noopResult
	var rates, oneRates []float64
	for rep := range cfg.repeat {
		m, err := b.noopRun(ctx, runLabel("ceiling", rep, cfg.repeat), "notifyd")
		if err != nil {
			return err
		}
		runs, rates = append(runs, m), append(rates, round(float64(cfg.n)/m.secs, 1))
		one, err := b.noopRun(ctx, runLabel("ceiling, one queue", rep, cfg.repeat), "single")
		if err != nil {
			return err
		}
		oneRuns, oneRates = append(oneRuns, one), append(oneRates, round(float64(cfg.n)/one.secs, 1))
	}
	// The median run is the one with the median time.
	m := median(runs, func(r noopResult) float64 { return r.secs })
	one := median(oneRuns, func(r noopResult) float64 { return r.secs })
	r := &CeilingResult{N: cfg.n, Seconds: round(m.secs, 3), PerSecond: round(float64(cfg.n)/m.secs, 1), CPU: m.split,
		OneQueuePerSecond: round(float64(cfg.n)/one.secs, 1), Runs: rates, OneQueueRuns: oneRates}
	b.res.Ceiling = r
	b.ceilingRows(r)
	return nil
}

func (b *bench) ceilingRows(r *CeilingResult) {
	figure := fmt.Sprintf("%s no-op Asynq tasks/s (same N, concurrency %d, notifyd's queues)%s", strings.TrimSuffix(fmtRate(r.PerSecond), "/s"), b.cfg.concurrency, runsNote(r.Runs))
	if tp := b.res.Throughput; tp != nil {
		ratio := round(tp.PerSecond/r.PerSecond, 3)
		r.Ratio = &ratio
	}
	b.ratioRow("2 ceiling", figure, "; notifyd = %.0f%% of it", r.Ratio, "ceiling_ratio", targetCeilingRatio, "≥ 50 %")
	b.rows = append(b.rows,
		row{"  cpu: % of a core (share)", strings.Replace(r.CPU.String(), "notifyd", "no-op consumer", 1), "", ""},
		row{"  one queue", fmt.Sprintf("%s no-op tasks/s with a single queue (what notifyd's queue layout costs)%s", strings.TrimSuffix(fmtRate(r.OneQueuePerSecond), "/s"), runsNote(r.OneQueueRuns)), "", ""},
	)
}

// noopRun enqueues N tasks exactly as the Go client does while a no-op
// consumer with the worker's Asynq settings processes them; it measures
// the time from the first enqueue to the last task processed.
func (b *bench) noopRun(ctx context.Context, label, queues string) (noopResult, error) {
	cfg := b.cfg
	if err := b.resetQueue(ctx); err != nil {
		return noopResult{}, err
	}
	c, err := b.startChild(ctx, "noop", b.consumerArgs("-queues", queues)...)
	if err != nil {
		return noopResult{}, err
	}
	defer b.stopChild(c)
	before := b.sampler.snapshot()
	start := time.Now()
	p := startProducers(ctx, func(ctx context.Context) error { return b.produce(ctx, cfg.n, b.enqueueNoop) })
	defer p.stop()
	var s struct {
		Processed int64 `json:"processed"`
		LastNS    int64 `json:"last_ns"`
	}
	deadline := time.Now().Add(max(5*time.Minute, time.Duration(cfg.n/200)*time.Second))
	err = poll(ctx, 10*time.Millisecond, deadline, func() (bool, error) {
		if err := getJSON(b.http, c.ready["stats"], &s); err != nil {
			return false, err
		}
		b.prog.update("%s: %s/%s no-op tasks processed, %s", label, thousands(s.Processed), thousands(int64(cfg.n)), fmtRate(float64(s.Processed)/time.Since(start).Seconds()))
		if s.Processed >= int64(cfg.n) {
			return true, nil
		}
		if err := p.failed(); err != nil {
			return false, fmt.Errorf("enqueue: %w", err)
		}
		return false, nil
	}, func() error { return fmt.Errorf("only %d of %d no-op tasks processed", s.Processed, cfg.n) })
	if err != nil {
		return noopResult{}, err
	}
	r := noopResult{secs: time.Unix(0, s.LastNS).Sub(start).Seconds(), split: cpuDelta(before, b.sampler.snapshot())}
	b.prog.done("%s: %s no-op tasks in %.2f s: %s", label, thousands(int64(cfg.n)), r.secs, fmtRate(float64(cfg.n)/r.secs))
	return r, nil
}

// enqueueNoop enqueues for notification i exactly the task the Go client
// enqueues, straight through Asynq.
func (b *bench) enqueueNoop(ctx context.Context, i int) error {
	r, key := b.okReceivers[i%len(b.okReceivers)], "ceil-"+strconv.Itoa(i)
	d := tasks.Deliver{ID: tasks.NotificationID(r.ID, key), ReceiverID: r.ID, EventType: eventType,
		IdempotencyKey: key, Payload: b.payload(i), EnqueuedAt: time.Now().UTC(), Attempt: 1, QueueShards: queueShards()}
	t, err := d.Task(nil)
	if err == nil {
		_, err = b.queue.EnqueueContext(ctx, t)
	}
	return err
}
