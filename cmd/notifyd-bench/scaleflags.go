package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// scaleConfig is what the throughput run spreads over several processes
// (--workers, --queue-shards) and the assumptions of the sizing table
// derived from its figures.
type scaleConfig struct {
	workersFlag string
	workers     []int
	queueShards int
	assume      sizingAssumptions
	// sizingFrom is a JSON line of an earlier run: print its sizing table
	// (with these assumptions) and run nothing.
	sizingFrom string
}

// sizingAssumptions are the inputs of the capacity model that the bench
// does not measure; every one is a flag and printed with the table.
type sizingAssumptions struct {
	Rates            []float64     `json:"rates_per_s"`
	Retention        time.Duration `json:"-"`
	RetentionDays    float64       `json:"retention_days"`
	Utilisation      float64       `json:"target_utilisation"`
	RetryShare       float64       `json:"retry_share"`
	PayloadBytes     float64       `json:"payload_bytes"`
	Headroom         float64       `json:"headroom"`
	Backlog          time.Duration `json:"-"`
	BacklogMinutes   float64       `json:"backlog_minutes"`
	RedisOpsPerCore  float64       `json:"redis_ops_per_master"`
	PostgresMaxCores float64       `json:"postgres_max_cores"`
	PostgresMaxDisk  float64       `json:"postgres_max_disk_bytes"`
	// ReceiverLatency is receivers' mean answer time: deliveries in
	// flight are rate × latency (Little's law), WorkerConcurrency of them
	// per worker process.
	ReceiverLatency   time.Duration `json:"-"`
	ReceiverLatencyMS float64       `json:"receiver_latency_ms"`
	WorkerConcurrency float64       `json:"worker_concurrency"`
	ratesFlag         string
}

func (s *scaleConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&s.workersFlag, "workers", "1,2",
		"throughput runs with each of these numbers of notifyd worker processes (each with --concurrency), alternated within a repetition")
	fs.IntVar(&s.queueShards, "queue-shards", 1,
		"when above 1, one more throughput run with NOTIFYD_QUEUE_SHARDS set to it for the workers and producers (with the last --workers count)")
	fs.StringVar(&s.sizingFrom, "sizing-from", "", "print the sizing table of this saved JSON line (--json output) with the given assumptions, and run nothing")
	a := &s.assume
	fs.StringVar(&a.ratesFlag, "sizing-rates", "1000,10000,100000", "sustained notification rates (per second) the sizing table is computed for")
	fs.DurationVar(&a.Retention, "sizing-retention", 30*24*time.Hour, "retention the disk is sized for")
	fs.Float64Var(&a.Utilisation, "sizing-utilisation", 0.5, "share of each core the sizing plans to use at the sustained rate (the rest absorbs bursts and retries after an outage)")
	fs.Float64Var(&a.RetryShare, "sizing-retry-share", 0.05, "extra attempts per notification (retries), each costing what a first attempt costs")
	fs.Float64Var(&a.PayloadBytes, "sizing-payload-bytes", 1024, "average payload size the disk and Redis memory are sized for")
	fs.Float64Var(&a.Headroom, "sizing-headroom", 1.5, "factor on disk and memory above the computed need (bloat, growth, a full vacuum)")
	fs.DurationVar(&a.Backlog, "sizing-backlog", 15*time.Minute, "queue backlog Redis memory must hold, as time at the full rate (workers stopped or slowed for that long)")
	fs.Float64Var(&a.RedisOpsPerCore, "sizing-redis-ops", 100_000, "commands per second one Redis master (one core, single-threaded) is planned to serve")
	fs.Float64Var(&a.PostgresMaxCores, "sizing-postgres-max-cores", 32, "cores of the largest Postgres primary considered; above it the table says to shard")
	fs.Float64Var(&a.PostgresMaxDisk, "sizing-postgres-max-disk", 10e12, "bytes of data the largest Postgres primary considered holds (backups, restores and replicas of more take too long); above it the table says to shard")
	fs.DurationVar(&a.ReceiverLatency, "sizing-receiver-latency", 100*time.Millisecond, "receivers' mean answer time: deliveries in flight are rate × this")
	fs.Float64Var(&a.WorkerConcurrency, "sizing-worker-concurrency", 100, "deliveries in flight per worker process (NOTIFYD_WORKER_CONCURRENCY)")
}

// parse reads the lists and checks the ranges.
func (s *scaleConfig) parse() error {
	s.workers = nil
	for _, f := range strings.Split(s.workersFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 16 {
			return fmt.Errorf("--workers: %q is not a process count from 1 to 16", f)
		}
		s.workers = append(s.workers, n)
	}
	if s.queueShards < 1 || s.queueShards > 256 {
		return errors.New("--queue-shards must be between 1 and 256")
	}
	return s.assume.parse()
}

func (a *sizingAssumptions) parse() error {
	a.Rates = nil
	for _, f := range strings.Split(a.ratesFlag, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("--sizing-rates: %q is not a positive rate", f)
		}
		a.Rates = append(a.Rates, v)
	}
	a.RetentionDays = round(a.Retention.Hours()/24, 2)
	a.BacklogMinutes = round(a.Backlog.Minutes(), 2)
	a.ReceiverLatencyMS = float64(a.ReceiverLatency.Milliseconds())
	switch {
	case a.Utilisation <= 0 || a.Utilisation > 1:
		return errors.New("--sizing-utilisation must be in (0, 1]")
	case a.RetryShare < 0:
		return errors.New("--sizing-retry-share must not be negative")
	case a.PayloadBytes < 0 || a.Headroom < 1:
		return errors.New("--sizing-payload-bytes must not be negative and --sizing-headroom must be at least 1")
	case a.Retention <= 0 || a.Backlog < 0:
		return errors.New("--sizing-retention must be positive and --sizing-backlog not negative")
	case a.RedisOpsPerCore <= 0 || a.PostgresMaxCores <= 0 || a.PostgresMaxDisk <= 0 || a.WorkerConcurrency < 1:
		return errors.New("--sizing-redis-ops, --sizing-postgres-max-cores, --sizing-postgres-max-disk and --sizing-worker-concurrency must be positive")
	case a.ReceiverLatency < 0:
		return errors.New("--sizing-receiver-latency must not be negative")
	}
	return nil
}

// tpConfig is one throughput configuration.
type tpConfig struct {
	workers int
	shards  int
}

func (c tpConfig) String() string {
	s := fmt.Sprintf("%d worker", c.workers)
	if c.workers > 1 {
		s += "s"
	}
	if c.shards > 1 {
		s += fmt.Sprintf(", %d queue shards", c.shards)
	}
	return s
}

// configs are the throughput runs of one repetition: each worker count on
// unsharded queues, then the sharded run.
func (s *scaleConfig) configs() []tpConfig {
	var out []tpConfig
	for _, w := range s.workers {
		out = append(out, tpConfig{workers: w, shards: 1})
	}
	if s.queueShards > 1 {
		out = append(out, tpConfig{workers: s.workers[len(s.workers)-1], shards: s.queueShards})
	}
	return out
}
