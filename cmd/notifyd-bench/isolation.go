package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// IsolationResult is scenario 5: 30 % of receivers hang until their timeout.
type IsolationResult struct {
	Receivers      int     `json:"receivers"`
	Hanging        int     `json:"hanging"`
	HangTimeoutS   float64 `json:"hang_timeout_s"`
	BurstN         int     `json:"burst_n"`
	HealthyN       int     `json:"burst_healthy_n"`
	HealthySeconds float64 `json:"burst_healthy_seconds"`
	HealthyRate    float64 `json:"healthy_delivered_per_s"`
	// BurstDeferred counts the burst's deliveries deferred without an
	// attempt, by reason (what isolation cost the queue).
	BurstDeferred map[string]float64 `json:"burst_deferred,omitempty"`
	BurstCPU      *CPUSplit          `json:"burst_cpu,omitempty"`
	// ThroughputRatio is HealthyRate over scenario 1's delivered/s.
	ThroughputRatio *float64 `json:"throughput_ratio"`
	// Steady run: the latency scenario's rate with 30 % going to hanging
	// receivers; enqueue → first attempt start of the healthy ones.
	SteadyFirstAttempt Dist     `json:"steady_healthy_enqueue_to_first_attempt"`
	P99Ratio           *float64 `json:"p99_ratio"` // over scenario 3's p99
}

func (b *bench) isolation(ctx context.Context) error {
	cfg := b.cfg
	rs := b.isoReceivers
	hang := func(i int) bool { return i%len(rs) < b.hangCount }
	r := &IsolationResult{Receivers: len(rs), Hanging: b.hangCount, HangTimeoutS: cfg.hangTimeout.Seconds(), BurstN: cfg.isoN}
	for i := range cfg.isoN {
		if !hang(i) {
			r.HealthyN++
		}
	}
	if err := b.isolationBurst(ctx, r); err != nil {
		return err
	}
	if err := b.isolationSteady(ctx, r, hang); err != nil {
		return err
	}
	b.res.Isolation = r
	b.isolationRows(r)
	if math.IsNaN(r.HealthyRate) {
		return errors.New("no healthy deliveries")
	}
	return nil
}

// isolationBurst is part A: a burst, as in scenario 1.
func (b *bench) isolationBurst(ctx context.Context, r *IsolationResult) error {
	cfg := b.cfg
	rs := b.isoReceivers
	// Slots a hanging notification holds: every hanging first attempt takes
	// a worker slot for the whole timeout.
	hangWork := time.Duration(cfg.isoN-r.HealthyN) * cfg.hangTimeout / time.Duration(cfg.concurrency)
	c, err := b.startNotifyd(ctx)
	if err != nil {
		return err
	}
	defer b.stopChild(c)
	run, err := b.burst(ctx, "isolation burst", cfg.isoN, func(i int) (benchReceiver, string) {
		return rs[i%len(rs)], "iso-" + strconv.Itoa(i)
	}, ids(rs[b.hangCount:]), 0, r.HealthyN, 3*hangWork+3*time.Minute)
	if err != nil {
		return err
	}
	r.BurstCPU = run.cpu
	b.stopChild(c)
	r.BurstDeferred = map[string]float64{}
	for k, v := range c.stats {
		if reason, ok := strings.CutPrefix(k, "deferred_"); ok {
			r.BurstDeferred[reason] = v
		}
	}
	r.HealthySeconds = round(run.seconds(), 3)
	r.HealthyRate = round(float64(r.HealthyN)/run.seconds(), 1)
	b.prog.done("isolation burst: %s healthy delivered in %.2f s: %s", thousands(int64(r.HealthyN)), r.HealthySeconds, fmtRate(r.HealthyRate))
	return nil
}

// isolationSteady is part B: the latency scenario's steady rate.
func (b *bench) isolationSteady(ctx context.Context, r *IsolationResult, hang func(int) bool) error {
	cfg := b.cfg
	rs := b.isoReceivers
	c, err := b.startNotifyd(ctx)
	if err != nil {
		return err
	}
	defer b.stopChild(c)
	steadyHang := time.Duration(float64(cfg.rate)*cfg.duration.Seconds()*float64(b.hangCount)/float64(len(rs))) * cfg.hangTimeout / time.Duration(cfg.concurrency)
	run, err := b.steady(ctx, "isolation steady", func(i int) (benchReceiver, string) {
		return rs[i%len(rs)], "isos-" + strconv.Itoa(i)
	}, func(i int) bool { return !hang(i) }, 3*steadyHang+3*time.Minute)
	if err != nil {
		return err
	}
	b.stopChild(c)
	r.SteadyFirstAttempt = distOf(since(run.enq, run.first))
	b.prog.done("isolation steady: healthy enqueue → first attempt %s", r.SteadyFirstAttempt)
	return nil
}

func (b *bench) isolationRows(r *IsolationResult) {
	cfg := b.cfg
	figure := fmt.Sprintf("%d of %d receivers hang (%s timeout): healthy %s delivered/s", r.Hanging, r.Receivers, cfg.hangTimeout, strings.TrimSuffix(fmtRate(r.HealthyRate), "/s"))
	if tp := b.res.Throughput; tp != nil {
		ratio := round(r.HealthyRate/tp.PerSecond, 3)
		r.ThroughputRatio = &ratio
	}
	b.ratioRow("5 isolation", figure, " = %.1f%% of scenario 1", r.ThroughputRatio, "isolation_throughput", targetIsolation, "≥ 80 %")
	lat := "healthy enqueue → first attempt at " + strconv.Itoa(cfg.rate) + "/s: " + r.SteadyFirstAttempt.String()
	if l := b.res.Latency; l != nil && l.FirstAttempt.P99 > 0 {
		ratio := round(r.SteadyFirstAttempt.P99/l.FirstAttempt.P99, 2)
		r.P99Ratio = &ratio
		lat += fmt.Sprintf(" (p99 %.1f× scenario 3)", ratio)
	}
	b.rows = append(b.rows, row{"", lat, "", ""})
	b.rows = append(b.rows, row{"", fmt.Sprintf("burst deferrals without an attempt: %.0f receiver busy, %.0f circuit open",
		r.BurstDeferred["receiver_busy"], r.BurstDeferred["circuit_open"]), "", ""})
	b.rows = append(b.rows, row{"  burst cpu", r.BurstCPU.String(), "", ""})
}
