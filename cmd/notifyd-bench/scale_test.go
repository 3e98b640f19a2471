package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

// checkCosts: the smoke run's per-notification costs are there and
// plausible (TestSmoke).
func checkCosts(t *testing.T, c *Costs) {
	t.Helper()
	if c == nil {
		t.Fatal("throughput.costs missing")
	}
	for _, k := range []string{cpuNotifyd, cpuPostgres, cpuRedis, cpuReceiver} {
		if c.CPUMicros[k] <= 0 {
			t.Errorf("costs: cpu_us[%s] = %v, want > 0", k, c.CPUMicros[k])
		}
	}
	const payload = 300 // the bench's default --payload-bytes
	switch {
	case c.RedisScope != "private":
		t.Errorf("costs: redis_scope = %q, want private (the bench's own server)", c.RedisScope)
	// At least the enqueue, the dequeue and the completion.
	case c.RedisCommands < 3 || c.RedisCalls < c.RedisCommands:
		t.Errorf("costs: %.1f redis commands, %.1f calls per notification", c.RedisCommands, c.RedisCalls)
	case c.RedisBytesIn < payload || c.RedisBytesOut < payload:
		t.Errorf("costs: redis bytes in %.0f, out %.0f per notification: the payload goes in and out once at least", c.RedisBytesIn, c.RedisBytesOut)
	// The notification and its attempt.
	case c.PGRowsInserted < 2 || c.PGRowsWritten < c.PGRowsInserted:
		t.Errorf("costs: %.2f rows inserted, %.2f written per notification, want ≥ 2", c.PGRowsInserted, c.PGRowsWritten)
	case c.WALBytes < 100 || (c.WALScope == "database" && c.WALBytesCluster < c.WALBytes):
		t.Errorf("costs: WAL %.0f B (%s), cluster %.0f B per notification", c.WALBytes, c.WALScope, c.WALBytesCluster)
	case c.RedisQueueBytesPerTask < payload:
		t.Errorf("costs: %.0f B of Redis per queued task, less than its payload", c.RedisQueueBytesPerTask)
	}
}

// checkScaling: --workers 1,2 --queue-shards 2 ran three configurations.
func checkScaling(t *testing.T, raw json.RawMessage) {
	t.Helper()
	var s ScalingResult
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	want := []struct{ workers, shards int }{{1, 1}, {2, 1}, {2, 2}}
	if len(s.Runs) != len(want) {
		t.Fatalf("scaling: %d runs, want %d: %s", len(s.Runs), len(want), raw)
	}
	for i, w := range want {
		r := s.Runs[i]
		if r.Workers != w.workers || r.QueueShards != w.shards || r.PerSecond <= 0 || r.Costs == nil || r.Costs.CPUMicros[cpuNotifyd] <= 0 {
			t.Errorf("scaling run %d: %+v, want %d workers, %d shards, with figures", i, r, w.workers, w.shards)
		}
	}
	if s.Ratio == nil || *s.Ratio <= 0 || s.ShardedRatio == nil || *s.ShardedRatio <= 0 {
		t.Errorf("scaling: ratio %v, sharded ratio %v", s.Ratio, s.ShardedRatio)
	}
}

// checkSizing: the table is in the JSON line and printed, from every input.
func checkSizing(t *testing.T, raw json.RawMessage, out string) {
	t.Helper()
	var s SizingResult
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Rows) != 3 || len(s.Missing) > 0 {
		t.Fatalf("sizing: %s", raw)
	}
	for i, r := range s.Rows[1:] {
		prev := s.Rows[i]
		if r.WorkerProcesses < prev.WorkerProcesses || math.Abs(r.DiskBytes/prev.DiskBytes-10) > 1e-6 || r.RedisMemoryBytes <= 0 {
			t.Errorf("sizing: %+v after %+v: not 10× the rate's figures", r, prev)
		}
	}
	if !strings.Contains(out, "| worker processes") || !strings.Contains(out, "| 1,000/s | 10,000/s | 100,000/s |") {
		t.Errorf("sizing table not printed:\n%s", out)
	}
}

func TestSizeFor(t *testing.T) {
	t.Parallel()
	base := sizingAssumptions{Retention: 30 * 24 * time.Hour, Utilisation: 0.5, PayloadBytes: 1000, Headroom: 1,
		Backlog: 10 * time.Minute, RedisOpsPerCore: 100_000, PostgresMaxCores: 32, PostgresMaxDisk: 1e18,
		ReceiverLatency: 50 * time.Millisecond, WorkerConcurrency: 100}
	in := sizingInputs{NotifydCPUMicros: 100, PostgresCPUMicros: 50, RedisCPUMicros: 40, RedisCalls: 10, PGRows: 2,
		WALBytes: 1000, NotificationBytes: 300, AttemptBytes: 200, QueueBytes: 700}
	month := 30 * 86400.0
	tests := []struct {
		name  string
		in    sizingInputs
		a     func(a *sizingAssumptions)
		rate  float64
		want  sizingRow
		limit string
	}{
		{"1k/s fits one of each", in, nil, 1000, sizingRow{AttemptsPerS: 1000, WorkerCores: 0.2, InFlight: 50, WorkerProcesses: 1,
			RedisCores: 0.08, RedisMastersByCPU: 1, RedisMastersByOps: 1, RedisMasters: 1, RedisMemoryBytes: 1000 * 600 * 1700,
			PostgresCores: 0.1, PostgresRowsPerS: 2000, WALBytesPerS: 1e6, DiskBytes: 1000 * month * 1500}, "nothing: one Redis, one Postgres primary"},
		{"100k/s with retries: commands decide the masters, deliveries in flight the processes", in, func(a *sizingAssumptions) { a.RetryShare = 0.1 }, 100_000,
			sizingRow{AttemptsPerS: 110_000, WorkerCores: 22, InFlight: 5500, WorkerProcesses: 55, RedisCores: 8.8, RedisMastersByCPU: 9,
				RedisMastersByOps: 22, RedisMasters: 22, RedisMemoryBytes: 100_000 * 600 * 1700, PostgresCores: 11,
				PostgresRowsPerS: 220_000, WALBytesPerS: 110e6, DiskBytes: 100_000 * month * (300 + 1000 + 220)}, "Redis (cluster, sharded queues)"},
		{"Postgres outgrows its primary first", sizingInputs{NotifydCPUMicros: 100, PostgresCPUMicros: 2000, RedisCPUMicros: 10, RedisCalls: 2},
			func(a *sizingAssumptions) { a.Headroom, a.PayloadBytes, a.Backlog, a.ReceiverLatency = 2, 0, 0, 0 }, 100_000,
			sizingRow{AttemptsPerS: 100_000, WorkerCores: 20, WorkerProcesses: 20, RedisCores: 2, RedisMastersByCPU: 2,
				RedisMastersByOps: 4, RedisMasters: 4, PostgresCores: 400}, "Postgres (sharding), then Redis (cluster, sharded queues)"},
		{"a month of data outgrows the primary's disk", in, func(a *sizingAssumptions) { a.PostgresMaxDisk = 1e12 }, 1000,
			sizingRow{AttemptsPerS: 1000, WorkerCores: 0.2, InFlight: 50, WorkerProcesses: 1, RedisCores: 0.08, RedisMastersByCPU: 1,
				RedisMastersByOps: 1, RedisMasters: 1, RedisMemoryBytes: 1000 * 600 * 1700, PostgresCores: 0.1, PostgresRowsPerS: 2000,
				WALBytesPerS: 1e6, DiskBytes: 1000 * month * 1500}, "Postgres (sharding)"},
		{"tiny rate still needs one of each", in, func(a *sizingAssumptions) { a.Utilisation = 1 }, 1,
			sizingRow{AttemptsPerS: 1, WorkerCores: 1e-4, InFlight: 0.05, WorkerProcesses: 1, RedisCores: 4e-5, RedisMastersByCPU: 1, RedisMastersByOps: 1,
				RedisMasters: 1, RedisMemoryBytes: 600 * 1700, PostgresCores: 5e-5, PostgresRowsPerS: 2, WALBytesPerS: 1000,
				DiskBytes: month * 1500}, "nothing: one Redis, one Postgres primary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := base
			if tt.a != nil {
				tt.a(&a)
			}
			got := sizeFor(tt.in, a, tt.rate)
			want := tt.want
			want.Rate, want.FirstLimit = tt.rate, tt.limit
			near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y)) }
			if !near(got.AttemptsPerS, want.AttemptsPerS) || !near(got.WorkerCores, want.WorkerCores) || got.WorkerProcesses != want.WorkerProcesses ||
				!near(got.RedisCores, want.RedisCores) || got.RedisMastersByCPU != want.RedisMastersByCPU || got.RedisMastersByOps != want.RedisMastersByOps ||
				got.RedisMasters != want.RedisMasters || !near(got.RedisMemoryBytes, want.RedisMemoryBytes) || !near(got.PostgresCores, want.PostgresCores) ||
				!near(got.PostgresRowsPerS, want.PostgresRowsPerS) || !near(got.WALBytesPerS, want.WALBytesPerS) || !near(got.DiskBytes, want.DiskBytes) ||
				!near(got.InFlight, want.InFlight) || got.FirstLimit != want.FirstLimit {
				t.Errorf("sizeFor(rate %v)\n got %+v\nwant %+v", tt.rate, got, want)
			}
		})
	}
}

// TestSizingInputs: the model's inputs come from the JSON line's costs and
// storage, payload taken out of the queue memory.
func TestSizingInputs(t *testing.T) {
	t.Parallel()
	res := &Results{
		Throughput: &ThroughputResult{Costs: &Costs{CPUMicros: map[string]float64{cpuNotifyd: 120, cpuPostgres: 60, cpuRedis: 45},
			RedisCalls: 14, PGRowsWritten: 2.1, WALBytes: 1500, RedisQueueBytesPerTask: 1300}},
		Storage: &StorageResult{Delivered: 1000, NotificationsTable: 800_000, NotificationsIndex: 200_000, PayloadBytes: 300_000,
			AttemptsTable: 250_000, AttemptsIndex: 50_000},
	}
	in, missing, err := sizingInputsOf(res, 300)
	want := sizingInputs{NotifydCPUMicros: 120, PostgresCPUMicros: 60, RedisCPUMicros: 45, RedisCalls: 14, PGRows: 2.1, WALBytes: 1500,
		NotificationBytes: 700, AttemptBytes: 300, QueueBytes: 1000}
	if err != nil || len(missing) > 0 || in != want {
		t.Errorf("sizingInputsOf = %+v, %v, %v; want %+v", in, missing, err, want)
	}
	res.Storage = nil
	if _, missing, _ := sizingInputsOf(res, 300); len(missing) != 1 || missing[0] != "storage" {
		t.Errorf("without storage: missing = %v", missing)
	}
	if _, _, err := sizingInputsOf(&Results{}, 300); err == nil {
		t.Error("no throughput: no error")
	}
}

// TestSizingFrom: a saved JSON line is enough to print the table again with
// other assumptions.
func TestSizingFrom(t *testing.T) {
	t.Parallel()
	res := Results{Bench: "notifyd", Params: map[string]any{"payload_bytes": 300, "n": 50000},
		Throughput: &ThroughputResult{Workers: 1, Costs: &Costs{CPUMicros: map[string]float64{cpuNotifyd: 120, cpuPostgres: 60, cpuRedis: 45},
			RedisCalls: 14, PGRowsWritten: 2, WALBytes: 1500, RedisQueueBytesPerTask: 1300}},
		Storage: &StorageResult{Delivered: 1000, NotificationsTable: 800_000, AttemptsTable: 250_000}}
	line, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/bench.txt"
	if err := writeFile(path, "table\n"+string(line)+"\n"); err != nil {
		t.Fatal(err)
	}
	c, err := parseFlags([]string{"--sizing-from", path, "--sizing-rates", "2000,4000"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := sizingFrom(c.scale.sizingFrom, c.scale.assume, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| | 2,000/s | 4,000/s |") || !strings.Contains(out.String(), "Redis calls") ||
		!strings.Contains(out.String(), "| per notification (1 worker) |") {
		t.Errorf("output:\n%s", out.String())
	}
	if err := sizingFrom(t.TempDir()+"/none", c.scale.assume, &out); err == nil {
		t.Error("missing file: no error")
	}
}

func TestScaleFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		configs string
		wantErr bool
	}{
		{nil, "1 worker|2 workers", false},
		{[]string{"--workers", "1"}, "1 worker", false},
		{[]string{"--workers", "1,2,4", "--queue-shards", "4"}, "1 worker|2 workers|4 workers|4 workers, 4 queue shards", false},
		{[]string{"--workers", "0"}, "", true},
		{[]string{"--workers", "one"}, "", true},
		{[]string{"--queue-shards", "0"}, "", true},
		{[]string{"--sizing-utilisation", "1.5"}, "", true},
		{[]string{"--sizing-rates", "1000,-1"}, "", true},
		{[]string{"--sizing-headroom", "0.5"}, "", true},
		{[]string{"--sizing-worker-concurrency", "0"}, "", true},
	}
	for _, tt := range tests {
		c, err := parseFlags(tt.args, &bytes.Buffer{})
		if (err != nil) != tt.wantErr {
			t.Errorf("%v: err = %v, want error %v", tt.args, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		var names []string
		for _, tc := range c.scale.configs() {
			names = append(names, tc.String())
		}
		if got := strings.Join(names, "|"); got != tt.configs {
			t.Errorf("%v: configs %q, want %q", tt.args, got, tt.configs)
		}
	}
}

func TestParseRedisInfo(t *testing.T) {
	t.Parallel()
	info := "# Stats\r\ntotal_commands_processed:120\r\ntotal_net_input_bytes:4096\r\ninstantaneous_input_kbps:1.5\r\n\r\n" +
		"# Commandstats\r\ncmdstat_evalsha:calls=10,usec=300,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_zadd:calls=7,usec=14,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n"
	got := parseRedisInfo(info)
	want := map[string]int64{"total_commands_processed": 120, "total_net_input_bytes": 4096, "calls:evalsha": 10, "usec:evalsha": 300,
		"calls:zadd": 7, "usec:zadd": 14}
	if len(got) != len(want) {
		t.Errorf("parseRedisInfo = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

// TestCPUSplitAddsUpProcesses: the CPU of several processes of one
// category (the worker processes) adds up in the split.
func TestCPUSplitAddsUpProcesses(t *testing.T) {
	t.Parallel()
	at := time.Now()
	before := cpuSnapshot{at: at, procs: map[procKey]procSample{
		{1, 10}: {cpuNotifyd, 100}, {2, 11}: {cpuNotifyd, 50}, {3, 12}: {cpuRedis, 10},
	}}
	after := cpuSnapshot{at: at.Add(2 * time.Second), procs: map[procKey]procSample{
		{1, 10}: {cpuNotifyd, 200}, {2, 11}: {cpuNotifyd, 130}, {3, 12}: {cpuRedis, 30}, {4, 13}: {cpuNotifyd, 20},
	}}
	s := cpuDelta(before, after)
	if s.Seconds[cpuNotifyd] != 2 || s.Seconds[cpuRedis] != 0.2 || s.PercentOfCore[cpuNotifyd] != 100 {
		t.Errorf("split = %+v, want notifyd 2 s (1 + 0.8 + a new process's 0.2), redis 0.2 s", s)
	}
}

func TestMeanStats(t *testing.T) {
	t.Parallel()
	got := meanStats([]*child{
		{stats: map[string]float64{"begin_rows_per_statement": 4, "deferred_circuit": 3}},
		{stats: map[string]float64{"begin_rows_per_statement": 6, "record_rows_per_statement": 10, "deferred_circuit": 2}},
	})
	if got["begin_rows_per_statement"] != 5 || got["record_rows_per_statement"] != 10 || got["deferred_circuit"] != 5 {
		t.Errorf("meanStats = %v", got)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
