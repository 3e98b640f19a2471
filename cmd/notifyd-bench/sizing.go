package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// The capacity model: from the per-notification costs a throughput run
// measured (CPU per component, Redis commands, rows, WAL, storage, queue
// memory), the resources a sustained rate needs, extrapolated linearly,
// with the assumptions the bench does not measure as flags
// (sizingAssumptions). It is arithmetic on measured figures, not a
// measurement of a large deployment: what it cannot know (contention,
// cache misses, network between machines) is what the utilisation target
// and the headroom leave room for.

// sizingInputs are the measured figures the model uses, per notification.
type sizingInputs struct {
	NotifydCPUMicros  float64 `json:"notifyd_cpu_us"`
	PostgresCPUMicros float64 `json:"postgres_cpu_us"`
	RedisCPUMicros    float64 `json:"redis_cpu_us"`
	RedisCalls        float64 `json:"redis_calls"`
	PGRows            float64 `json:"pg_rows_written"`
	WALBytes          float64 `json:"wal_bytes"`
	// NotificationBytes is the notification's row and index entries,
	// payload excluded; AttemptBytes an attempt's row and index entries.
	NotificationBytes float64 `json:"notification_bytes_excl_payload"`
	AttemptBytes      float64 `json:"attempt_bytes"`
	// QueueBytes is a queued task's Redis memory, payload excluded.
	QueueBytes float64 `json:"queue_bytes_excl_payload"`
}

// sizingRow is what one sustained rate needs.
type sizingRow struct {
	Rate              float64 `json:"rate_per_s"`
	AttemptsPerS      float64 `json:"attempts_per_s"`
	WorkerCores       float64 `json:"worker_cores"`
	InFlight          float64 `json:"deliveries_in_flight"`
	WorkerProcesses   int     `json:"worker_processes"`
	RedisCores        float64 `json:"redis_cores"`
	RedisMastersByCPU int     `json:"redis_masters_by_cpu"`
	RedisMastersByOps int     `json:"redis_masters_by_ops"`
	RedisMasters      int     `json:"redis_masters"`
	RedisMemoryBytes  float64 `json:"redis_backlog_memory_bytes"`
	PostgresCores     float64 `json:"postgres_cores"`
	PostgresRowsPerS  float64 `json:"postgres_rows_per_s"`
	WALBytesPerS      float64 `json:"wal_bytes_per_s"`
	DiskBytes         float64 `json:"disk_bytes"`
	// FirstLimit names what outgrows a single node first at this rate.
	FirstLimit string `json:"first_limit"`
}

// SizingResult is the table in the JSON line.
type SizingResult struct {
	Inputs      sizingInputs      `json:"inputs"`
	Assumptions sizingAssumptions `json:"assumptions"`
	Rows        []sizingRow       `json:"rows"`
	// Missing names inputs the run did not measure (their rows are 0).
	Missing []string `json:"missing,omitempty"`
}

// sizeFor is the model: what rate notifications/s need.
func sizeFor(in sizingInputs, a sizingAssumptions, rate float64) sizingRow {
	attempts := rate * (1 + a.RetryShare)
	cores := func(micros float64) float64 { return attempts * micros / 1e6 / a.Utilisation }
	r := sizingRow{Rate: rate, AttemptsPerS: attempts}
	r.WorkerCores = cores(in.NotifydCPUMicros)
	// Enough processes for the CPU, and for the deliveries in flight.
	r.InFlight = attempts * a.ReceiverLatency.Seconds()
	r.WorkerProcesses = max(units(r.WorkerCores), units(r.InFlight/a.WorkerConcurrency))
	// A Redis master runs commands on one thread: one core each.
	r.RedisCores = cores(in.RedisCPUMicros)
	r.RedisMastersByCPU = units(r.RedisCores)
	r.RedisMastersByOps = units(attempts * in.RedisCalls / (a.RedisOpsPerCore * a.Utilisation))
	r.RedisMasters = max(r.RedisMastersByCPU, r.RedisMastersByOps)
	r.RedisMemoryBytes = rate * a.Backlog.Seconds() * (in.QueueBytes + a.PayloadBytes) * a.Headroom
	r.PostgresCores = cores(in.PostgresCPUMicros)
	r.PostgresRowsPerS = attempts * in.PGRows
	r.WALBytesPerS = attempts * in.WALBytes
	perNotification := in.NotificationBytes + a.PayloadBytes + in.AttemptBytes*(1+a.RetryShare)
	r.DiskBytes = rate * a.Retention.Seconds() * perNotification * a.Headroom
	r.FirstLimit = firstLimit(r, a)
	return r
}

// units is how many whole machines (processes, masters) a need takes: at
// least one, and 22.000000000000004 (floating point) is 22.
func units(need float64) int {
	return max(1, int(math.Ceil(need-1e-9)))
}

// firstLimit names what outgrows one node at this rate, the furthest
// beyond its limit first (the model is linear, so that one was outgrown at
// the lowest rate): Redis beyond one master needs a cluster and sharded
// queues, Postgres beyond the largest primary considered needs sharding.
// Workers are stateless and never a limit: more processes.
func firstLimit(r sizingRow, a sizingAssumptions) string {
	redis := float64(r.RedisMasters) // over a limit of 1
	pg := max(r.PostgresCores/a.PostgresMaxCores, r.DiskBytes/a.PostgresMaxDisk)
	const redisName, pgName = "Redis (cluster, sharded queues)", "Postgres (sharding)"
	switch {
	case redis <= 1 && pg <= 1:
		return "nothing: one Redis, one Postgres primary"
	case pg <= 1:
		return redisName
	case redis <= 1:
		return pgName
	case redis >= pg:
		return redisName + ", then " + pgName
	default:
		return pgName + ", then " + redisName
	}
}

// sizingInputsOf takes the model's inputs from a run's results; missing
// lists what the run did not measure.
func sizingInputsOf(res *Results, payloadBytes float64) (in sizingInputs, missing []string, err error) {
	tp := res.Throughput
	if tp == nil || tp.Costs == nil {
		return in, nil, errors.New("no throughput costs to size from")
	}
	c := tp.Costs
	in = sizingInputs{NotifydCPUMicros: c.CPUMicros[cpuNotifyd], PostgresCPUMicros: c.CPUMicros[cpuPostgres],
		RedisCPUMicros: c.CPUMicros[cpuRedis], RedisCalls: c.RedisCalls, PGRows: c.PGRowsWritten, WALBytes: c.WALBytes}
	if c.RedisQueueBytesPerTask > 0 {
		in.QueueBytes = max(0, c.RedisQueueBytesPerTask-payloadBytes)
	} else {
		missing = append(missing, "redis queue memory")
	}
	if s := res.Storage; s != nil && s.Delivered > 0 {
		d := float64(s.Delivered)
		in.NotificationBytes = max(0, float64(s.NotificationsTable+s.NotificationsIndex-s.PayloadBytes)/d)
		in.AttemptBytes = float64(s.AttemptsTable+s.AttemptsIndex) / d
	} else {
		missing = append(missing, "storage")
	}
	return in, missing, nil
}

func newSizing(res *Results, payloadBytes float64, a sizingAssumptions) (*SizingResult, error) {
	in, missing, err := sizingInputsOf(res, payloadBytes)
	if err != nil {
		return nil, err
	}
	s := &SizingResult{Inputs: in, Assumptions: a, Missing: missing}
	for _, rate := range a.Rates {
		s.Rows = append(s.Rows, sizeFor(in, a, rate))
	}
	return s, nil
}

// sizing derives the table from this run's throughput and storage.
func (b *bench) sizing() {
	if b.res.Throughput == nil || b.res.Throughput.Costs == nil {
		return
	}
	s, err := newSizing(&b.res, float64(b.cfg.payloadBytes), b.cfg.scale.assume)
	if err != nil {
		b.res.Errors["sizing"] = err.Error()
		return
	}
	b.res.Sizing = s
}

// printSizing writes the table in Markdown (README's Sizing section is
// this output), its inputs and its assumptions.
func printSizing(w io.Writer, s *SizingResult) {
	if s == nil {
		return
	}
	a := s.Assumptions
	fmt.Fprintf(w, "\nSizing (sustained rate, %.0f days of retention; linear extrapolation of the costs measured above):\n\n", a.RetentionDays)
	head, sep := "| |", "|---|"
	for _, r := range s.Rows {
		head += " " + thousands(int64(r.Rate)) + "/s |"
		sep += "---|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	line := func(name string, cell func(r sizingRow) string) {
		l := "| " + name + " |"
		for _, r := range s.Rows {
			l += " " + cell(r) + " |"
		}
		fmt.Fprintln(w, l)
	}
	line("notifyd worker cores; deliveries in flight", func(r sizingRow) string {
		return fmt.Sprintf("%.1f; %s", r.WorkerCores, thousands(int64(r.InFlight)))
	})
	line(fmt.Sprintf("worker processes (one core, %.0f in flight each)", a.WorkerConcurrency), func(r sizingRow) string {
		return strconv.Itoa(r.WorkerProcesses)
	})
	line("Redis masters (by CPU; by commands)", func(r sizingRow) string {
		return fmt.Sprintf("%d (%.1f cores; %d)", r.RedisMasters, r.RedisCores, r.RedisMastersByOps)
	})
	line(fmt.Sprintf("Redis memory for a %.0f min backlog", a.BacklogMinutes), func(r sizingRow) string { return fmtBytes(r.RedisMemoryBytes) })
	line("Postgres cores", func(r sizingRow) string { return fmt.Sprintf("%.1f", r.PostgresCores) })
	line("Postgres rows written/s", func(r sizingRow) string { return thousands(int64(r.PostgresRowsPerS)) })
	line("WAL per second (per day)", func(r sizingRow) string {
		return fmtBytes(r.WALBytesPerS) + " (" + fmtBytes(r.WALBytesPerS*86400) + ")"
	})
	line(fmt.Sprintf("Postgres disk for %.0f days", a.RetentionDays), func(r sizingRow) string { return fmtBytes(r.DiskBytes) })
	line("outgrows one node first", func(r sizingRow) string { return r.FirstLimit })
	in := s.Inputs
	fmt.Fprintf(w, "\nMeasured, per notification: notifyd %.0f µs, Postgres %.0f µs, Redis %.0f µs of CPU; %.1f Redis calls; %.2f rows; WAL %s; "+
		"notification %s + attempt %s on disk (payload excluded); %s of Redis per queued task (payload excluded).\n",
		in.NotifydCPUMicros, in.PostgresCPUMicros, in.RedisCPUMicros, in.RedisCalls, in.PGRows, fmtBytes(in.WALBytes),
		fmtBytes(in.NotificationBytes), fmtBytes(in.AttemptBytes), fmtBytes(in.QueueBytes))
	fmt.Fprintf(w, "Assumed: cores %.0f %% busy at the sustained rate; %.0f %% more attempts for retries; %s payloads; receivers answer in %.0f ms on average; "+
		"headroom ×%.1f on disk and memory; a Redis master serves %s commands/s; one Postgres primary has at most %.0f cores and %s of data.\n",
		a.Utilisation*100, a.RetryShare*100, fmtBytes(a.PayloadBytes), a.ReceiverLatencyMS, a.Headroom, thousands(int64(a.RedisOpsPerCore)),
		a.PostgresMaxCores, fmtBytes(a.PostgresMaxDisk))
	if len(s.Missing) > 0 {
		fmt.Fprintf(w, "Not measured in this run (counted as 0): %s.\n", strings.Join(s.Missing, ", "))
	}
}

// fmtBytes formats a byte count in powers of 1,000 (disks are sold so).
func fmtBytes(v float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	i := 0
	for v >= 999.5 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if i == 0 || v >= 100 {
		return fmt.Sprintf("%.0f %s", v, units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// sizingFrom prints the sizing table of a saved JSON line (the last line
// of path that is one) with cfg's assumptions.
func sizingFrom(path string, a sizingAssumptions, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var res *Results
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r Results
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &r) == nil && r.Bench == "notifyd" {
			res = &r
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if res == nil {
		return fmt.Errorf("%s: no JSON line of the bench", path)
	}
	payload, _ := res.Params["payload_bytes"].(float64)
	s, err := newSizing(res, payload, a)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(stdout, "From %s: notifyd %s, started %s (load average before %s), n=%v.\n", path, res.Env.Notifyd, res.Env.Started,
		res.Env.LoadAvgBefore, res.Params["n"])
	printScaling(stdout, res.Scaling)
	printCosts(stdout, res.Throughput)
	printSizing(stdout, s)
	return nil
}

// printScaling writes the throughput configurations as a Markdown table.
func printScaling(w io.Writer, s *ScalingResult) {
	if s == nil || len(s.Runs) == 0 {
		return
	}
	first := s.Runs[0]
	fmt.Fprintf(w, "\n| run | delivered/s (median; every run) | ÷ first | CPU per notification: all / notifyd | machine busy, of which other processes |\n|---|---|---|---|---|\n")
	for _, r := range s.Runs {
		name := tpConfig{workers: r.Workers, shards: r.QueueShards}.String()
		var runs []string
		for _, v := range r.Runs {
			runs = append(runs, thousands(int64(math.Round(v))))
		}
		var notifyd float64
		if r.Costs != nil {
			notifyd = r.Costs.CPUMicros[cpuNotifyd]
		}
		fmt.Fprintf(w, "| %s | %s (%s) | %.2f | %.0f µs / %.0f µs | %.0f %% / %.0f %% of a core |\n", name, thousands(int64(math.Round(r.PerSecond))),
			strings.Join(runs, ", "), r.PerSecond/first.PerSecond, r.CPUPerNotifU, notifyd, r.CPU.MachinePercent, r.CPU.OthersPercent)
	}
}

// printCosts writes a run's per-notification costs as a Markdown table.
func printCosts(w io.Writer, r *ThroughputResult) {
	if r == nil || r.Costs == nil {
		return
	}
	c := r.Costs
	fmt.Fprintf(w, "\n| per notification (%s) | |\n|---|---|\n", tpConfig{workers: r.Workers, shards: r.QueueShards})
	fmt.Fprintf(w, "| CPU | notifyd %.0f µs, Postgres %.0f µs, Redis %.0f µs (receiver %.0f µs, load generator %.0f µs) |\n",
		c.CPUMicros[cpuNotifyd], c.CPUMicros[cpuPostgres], c.CPUMicros[cpuRedis], c.CPUMicros[cpuReceiver], c.CPUMicros[cpuBench])
	fmt.Fprintf(w, "| Redis | %.1f commands (%.1f EVALSHA, counted with the commands they run), %s in, %s out, %.0f µs executing (%s server) |\n",
		c.RedisCalls, c.RedisCallsByCommand["evalsha"], fmtBytes(c.RedisBytesIn), fmtBytes(c.RedisBytesOut), c.RedisExecMicros, c.RedisScope)
	fmt.Fprintf(w, "| Redis memory per queued task | %s (with the run's payload) |\n", fmtBytes(c.RedisQueueBytesPerTask))
	fmt.Fprintf(w, "| Postgres rows | %.2f written (%.2f inserted, %.2f updated, %.2f deleted) |\n", c.PGRowsWritten, c.PGRowsInserted, c.PGRowsUpdated, c.PGRowsDeleted)
	fpi := "" // not measured by older bench versions, nor without pg_walinspect
	if c.WALFPIBytes > 0 {
		fpi = ", " + fmtBytes(c.WALFPIBytes) + " of it full-page images"
	}
	fmt.Fprintf(w, "| WAL | %s%s (%s; the whole cluster's over the run: %s) |\n", fmtBytes(c.WALBytes), fpi, c.WALScope, fmtBytes(c.WALBytesCluster))
}
