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
	// Workers is the number of notifyd worker processes, QueueShards the
	// NOTIFYD_QUEUE_SHARDS they and the producers ran with.
	Workers     int `json:"workers"`
	QueueShards int `json:"queue_shards"`
	// Costs are the run's per-notification costs (costs.go).
	Costs *Costs `json:"costs"`
}

func (b *bench) throughput(ctx context.Context) error {
	cfg := b.cfg
	configs := cfg.scale.configs()
	// Repetitions alternate the configurations, so that the machine's
	// drift within minutes falls on all of them alike.
	runs := make([][]*ThroughputResult, len(configs))
	for rep := range cfg.repeat {
		for i, tc := range configs {
			r, err := b.throughputRun(ctx, rep, tc)
			if err != nil {
				return err
			}
			runs[i] = append(runs[i], r)
		}
	}
	medians := make([]*ThroughputResult, len(configs))
	for i := range configs {
		medians[i] = median(runs[i], func(r *ThroughputResult) float64 { return r.PerSecond })
		for _, run := range runs[i] {
			medians[i].Runs = append(medians[i].Runs, run.PerSecond)
		}
	}
	r := medians[0]
	b.res.Throughput = r
	met, text := verdict(r.PerSecond, targetThroughput, true)
	b.target("throughput", met, text)
	b.rows = append(b.rows,
		row{"1 throughput", fmt.Sprintf("%s delivered/s (%s in %.2f s, first enqueue → last delivered in PG, %s)%s", strings.TrimSuffix(fmtRate(r.PerSecond), "/s"),
			thousands(int64(cfg.n)), r.Seconds, configs[0], runsNote(r.Runs)), "≥ 8,000/s", text},
		row{"  cpu: % of a core (share)", r.CPU.String(), "", ""},
		row{"  cpu per notification", fmt.Sprintf("%.0f µs of CPU (notifyd+postgres+redis+receiver)", r.CPUPerNotifU), "", ""},
		row{"  batching", fmt.Sprintf("%.1f deliveries started and %.1f attempts recorded per statement (means)",
			r.Batching["begin_rows_per_statement"], r.Batching["record_rows_per_statement"]), "", ""},
	)
	b.costRows(r.Costs)
	b.scalingRows(configs, medians)
	return b.measureQueueMemory(ctx)
}

func (b *bench) throughputRun(ctx context.Context, rep int, tc tpConfig) (*ThroughputResult, error) {
	cfg := b.cfg
	var extra []string
	if cfg.cpuprofile != "" && rep == 0 && tc == cfg.scale.configs()[0] {
		extra = append(extra, "-cpuprofile", cfg.cpuprofile)
	}
	restore := b.useQueueShards(tc.shards)
	defer restore()
	workers, err := b.startWorkers(ctx, tc.workers, extra...)
	defer b.stopChildren(workers)
	if err != nil {
		return nil, err
	}
	rs := b.okReceivers
	// Earlier runs' notifications are delivered already.
	base, err := b.deliveredCount(ctx, ids(rs))
	if err != nil {
		return nil, err
	}
	releaseWAL := b.reserveWAL(ctx)
	defer releaseWAL()
	before, err := b.costSnapshot(ctx, false)
	if err != nil {
		return nil, err
	}
	label := runLabel("throughput, "+tc.String(), rep, cfg.repeat)
	timeout := max(5*time.Minute, time.Duration(cfg.n/200)*time.Second)
	run, err := b.burst(ctx, label, cfg.n, func(i int) (benchReceiver, string) {
		return rs[i%len(rs)], fmt.Sprintf("tp%d-w%ds%d-%d", rep, tc.workers, tc.shards, i)
	}, ids(rs), base, cfg.n, timeout)
	if err != nil {
		return nil, err
	}
	b.stopChildren(workers)
	after, err := b.costSnapshot(ctx, true)
	if err != nil {
		return nil, err
	}
	secs := run.seconds()
	r := &ThroughputResult{N: cfg.n, Workers: tc.workers, QueueShards: tc.shards, Seconds: round(secs, 3), PerSecond: round(float64(cfg.n)/secs, 1),
		EnqueueRate: round(float64(cfg.n)/run.enqueued.Sub(run.start).Seconds(), 1), CPU: run.cpu, Profile: cfg.cpuprofile,
		Batching: meanStats(workers), Costs: b.costsBetween(ctx, before, after, cfg.n, run.cpu)}
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
