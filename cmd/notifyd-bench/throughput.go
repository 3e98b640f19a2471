package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// ThroughputResult is scenario 1.
type ThroughputResult struct {
	N            int       `json:"n"`
	Seconds      float64   `json:"seconds"`
	PerSecond    float64   `json:"delivered_per_s"`
	EnqueueRate  float64   `json:"enqueue_per_s"`
	CPU          *CPUSplit `json:"cpu"`
	CPUPerNotifU float64   `json:"cpu_us_per_notification"`
	Profile      string    `json:"cpuprofile,omitempty"`
	// Batching is the worker's mean rows per statement when it starts
	// deliveries and records attempts.
	Batching map[string]float64 `json:"batching,omitempty"`
	// Runs holds every repetition's delivered/s (--repeat); the other
	// fields are those of the median run.
	Runs []float64 `json:"runs_per_s"`
}

func (b *bench) throughput(ctx context.Context) error {
	cfg := b.cfg
	var runs []*ThroughputResult
	for rep := range cfg.repeat {
		r, err := b.throughputRun(ctx, rep)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	r := median(runs, func(r *ThroughputResult) float64 { return r.PerSecond })
	for _, run := range runs {
		r.Runs = append(r.Runs, run.PerSecond)
	}
	b.res.Throughput = r
	met, text := verdict(r.PerSecond, targetThroughput, true)
	b.target("throughput", met, text)
	b.rows = append(b.rows,
		row{"1 throughput", fmt.Sprintf("%s delivered/s (%s in %.2f s, first enqueue → last delivered in PG)%s", strings.TrimSuffix(fmtRate(r.PerSecond), "/s"),
			thousands(int64(cfg.n)), r.Seconds, runsNote(r.Runs)), "≥ 8,000/s", text},
		row{"  cpu: % of a core (share)", r.CPU.String(), "", ""},
		row{"  cpu per notification", fmt.Sprintf("%.0f µs of CPU (notifyd+postgres+redis+receiver)", r.CPUPerNotifU), "", ""},
		row{"  batching", fmt.Sprintf("%.1f deliveries started and %.1f attempts recorded per statement (means)",
			r.Batching["begin_rows_per_statement"], r.Batching["record_rows_per_statement"]), "", ""},
	)
	return nil
}

func (b *bench) throughputRun(ctx context.Context, rep int) (*ThroughputResult, error) {
	cfg := b.cfg
	var extra []string
	if cfg.cpuprofile != "" && rep == 0 {
		extra = append(extra, "-cpuprofile", cfg.cpuprofile)
	}
	c, err := b.startNotifyd(ctx, extra...)
	if err != nil {
		return nil, err
	}
	defer b.stopChild(c)
	rs := b.okReceivers
	// Earlier repetitions' notifications are delivered already.
	base, err := b.deliveredCount(ctx, ids(rs))
	if err != nil {
		return nil, err
	}
	label := runLabel("throughput", rep, cfg.repeat)
	timeout := max(5*time.Minute, time.Duration(cfg.n/200)*time.Second)
	run, err := b.burst(ctx, label, cfg.n, func(i int) (benchReceiver, string) {
		return rs[i%len(rs)], fmt.Sprintf("tp%d-%d", rep, i)
	}, ids(rs), base, cfg.n, timeout)
	if err != nil {
		return nil, err
	}
	b.stopChild(c)
	secs := run.seconds()
	r := &ThroughputResult{N: cfg.n, Seconds: round(secs, 3), PerSecond: round(float64(cfg.n)/secs, 1),
		EnqueueRate: round(float64(cfg.n)/run.enqueued.Sub(run.start).Seconds(), 1), CPU: run.cpu, Profile: cfg.cpuprofile,
		Batching: c.stats}
	var total float64
	for _, k := range cpuOrder {
		if k != cpuBench {
			total += r.CPU.Seconds[k]
		}
	}
	r.CPUPerNotifU = round(total/float64(cfg.n)*1e6, 1)
	b.prog.done("%s: %s delivered in %.2f s: %s", label, thousands(int64(cfg.n)), secs, fmtRate(r.PerSecond))
	return r, nil
}
