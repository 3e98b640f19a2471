package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/notifyd/notifyd/notifier"
)

// ScalingResult compares the throughput configurations of one bench run
// (--workers, --queue-shards): the medians of each, alternated within
// every repetition so that they share the machine's drift.
type ScalingResult struct {
	Runs []*ThroughputResult `json:"runs"`
	// Ratio is the last worker count's throughput ÷ the first's (e.g. 2
	// workers ÷ 1 worker); ShardedRatio is the sharded run's ÷ the same
	// worker count unsharded. Nil when the run did not have both.
	Ratio        *float64 `json:"ratio"`
	ShardedRatio *float64 `json:"sharded_ratio"`
}

// queueShardsEnv is the setting of the sharded delivery queues.
const queueShardsEnv = "NOTIFYD_QUEUE_SHARDS"

// useQueueShards sets NOTIFYD_QUEUE_SHARDS for the workers started next and
// for the producers (the bench's own Go client, rebuilt so that it reads
// the setting afresh); restore puts back what was there. It is set even to
// 1, so that a value in the caller's environment does not leak into the
// unsharded runs.
func (b *bench) useQueueShards(shards int) (restore func()) {
	prevEnv, hadEnv := os.LookupEnv(queueShardsEnv)
	prevClient := b.client
	b.childEnv = []string{queueShardsEnv + "=" + strconv.Itoa(shards)}
	_ = os.Setenv(queueShardsEnv, strconv.Itoa(shards))
	b.client = notifier.NewFromRedisClient(b.rdb, notifier.WithAllowPrivateTargets(true))
	return func() {
		b.client.Close()
		b.client, b.childEnv = prevClient, nil
		if hadEnv {
			_ = os.Setenv(queueShardsEnv, prevEnv)
		} else {
			_ = os.Unsetenv(queueShardsEnv)
		}
	}
}

// startWorkers starts n notifyd worker processes on an empty queue, each
// with --concurrency: scaling out adds processes configured alike, as a
// deployment does. extra goes to the first one only (its CPU profile).
func (b *bench) startWorkers(ctx context.Context, n int, extra ...string) ([]*child, error) {
	first, err := b.startNotifyd(ctx, extra...)
	if err != nil {
		return nil, err
	}
	workers := []*child{first}
	for range n - 1 {
		c, err := b.startChild(ctx, "notifyd", b.notifydArgs(b.dbURL)...)
		if err != nil {
			return workers, err
		}
		workers = append(workers, c)
	}
	return workers, nil
}

// stopChildren stops every child (again: a stopped child returns at once).
func (b *bench) stopChildren(cs []*child) {
	for _, c := range cs {
		b.stopChild(c)
	}
}

// meanStats merges the workers' "stats" lines: means per statement are
// averaged over the workers that report them, deferral counts added up.
func meanStats(workers []*child) map[string]float64 {
	out := map[string]float64{}
	seen := map[string]int{}
	for _, c := range workers {
		for k, v := range c.stats {
			out[k] += v
			seen[k]++
		}
	}
	for k, n := range seen {
		if !strings.HasPrefix(k, "deferred_") {
			out[k] = round(out[k]/float64(n), 1)
		}
	}
	return out
}

// scalingRows records the configurations' medians and their ratios.
func (b *bench) scalingRows(configs []tpConfig, medians []*ThroughputResult) {
	s := &ScalingResult{Runs: medians}
	b.res.Scaling = s
	ratio := func(a, over *ThroughputResult) *float64 {
		v := round(a.PerSecond/over.PerSecond, 3)
		return &v
	}
	var unsharded []*ThroughputResult
	for _, r := range medians {
		if r.QueueShards == 1 {
			unsharded = append(unsharded, r)
		}
	}
	if len(unsharded) > 1 {
		s.Ratio = ratio(unsharded[len(unsharded)-1], unsharded[0])
	}
	if last := medians[len(medians)-1]; last.QueueShards > 1 && len(unsharded) > 0 {
		s.ShardedRatio = ratio(last, unsharded[len(unsharded)-1])
	}
	for i, r := range medians {
		if i == 0 {
			continue
		}
		figure := fmt.Sprintf("%s delivered/s = %.2f× %s; CPU per notification %.0f µs (notifyd %.0f µs over %d processes)%s",
			strings.TrimSuffix(fmtRate(r.PerSecond), "/s"), r.PerSecond/medians[0].PerSecond, configs[0], r.CPUPerNotifU,
			r.Costs.CPUMicros[cpuNotifyd], r.Workers, runsNote(r.Runs))
		b.rows = append(b.rows, row{"  scaling: " + configs[i].String(), figure, "not below 1 worker", scalingVerdict(r.PerSecond / medians[0].PerSecond)})
	}
}

// scalingVerdict: on a machine with fewer cores than processes to feed,
// more workers cannot scale linearly; the point is that they do not slow
// it down beyond the run-to-run spread (about 10 % here).
func scalingVerdict(ratio float64) string {
	if ratio >= 0.9 {
		return fmt.Sprintf("ok (%.2f×)", ratio)
	}
	return fmt.Sprintf("SLOWER (%.2f×)", ratio)
}

// costRows prints a run's per-notification costs.
func (b *bench) costRows(c *Costs) {
	if c == nil {
		return
	}
	var cpu []string
	for _, k := range cpuOrder {
		name := k
		if k == cpuBench {
			name = "load generator"
		}
		cpu = append(cpu, fmt.Sprintf("%s %.0f", name, c.CPUMicros[k]))
	}
	b.rows = append(b.rows,
		row{"  per notification: cpu µs", strings.Join(cpu, ", "), "", ""},
		row{"  per notification: redis", fmt.Sprintf("%.1f commands (%.1f of them EVALSHA, counted with the commands they run), %s B in, %s B out, %.0f µs executing (%s server)",
			c.RedisCalls, c.RedisCallsByCommand["evalsha"], thousands(int64(c.RedisBytesIn)), thousands(int64(c.RedisBytesOut)), c.RedisExecMicros, c.RedisScope), "", ""},
		row{"  per notification: postgres", fmt.Sprintf("%.2f rows written (%.2f inserted, %.2f updated, %.2f deleted); WAL %s B, %s B of it full-page images (%s; whole cluster %s B)",
			c.PGRowsWritten, c.PGRowsInserted, c.PGRowsUpdated, c.PGRowsDeleted, thousands(int64(c.WALBytes)), thousands(int64(c.WALFPIBytes)), c.WALScope,
			thousands(int64(c.WALBytesCluster))), "", ""},
	)
}

// measureQueueMemory adds the Redis memory of a queued notification to the
// throughput run's costs.
func (b *bench) measureQueueMemory(ctx context.Context) error {
	r := b.res.Throughput
	if r == nil || r.Costs == nil {
		return errors.New("no throughput run to add the queue memory to")
	}
	k := min(b.cfg.n, 5000)
	per, err := b.queueBytesPerTask(ctx, k)
	if err != nil {
		return fmt.Errorf("queue memory: %w", err)
	}
	r.Costs.RedisQueueBytesPerTask = per
	scope := ""
	if b.privateRedis == nil {
		scope = "; shared server: other clients' memory changes included"
	}
	b.rows = append(b.rows, row{"  redis memory per queued task", fmt.Sprintf("%s B with a %d B payload (%s enqueued, no worker)%s",
		thousands(int64(per)), b.cfg.payloadBytes, thousands(int64(k)), scope), "", ""})
	return nil
}
