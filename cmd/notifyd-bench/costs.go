package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Costs are what one delivered notification costs, measured over a
// throughput run: every figure is per notification (total over the run ÷
// N). They are the inputs of the sizing table (sizing.go).
type Costs struct {
	// CPUMicros is CPU µs per category of the split (notifyd is the sum of
	// every worker process).
	CPUMicros map[string]float64 `json:"cpu_us"`
	// RedisCommands is total_commands_processed, RedisCalls the sum of INFO
	// commandstats' calls, by command in RedisCallsByCommand; Redis 7
	// counts the commands a script runs in both, besides the EVALSHA.
	RedisCommands       float64            `json:"redis_commands"`
	RedisCalls          float64            `json:"redis_calls_incl_scripts"`
	RedisCallsByCommand map[string]float64 `json:"redis_calls_by_command"`
	// RedisExecMicros is the time Redis itself says it spent executing
	// commands (commandstats usec; the rest of its CPU is network I/O).
	RedisExecMicros float64 `json:"redis_exec_us"`
	RedisBytesIn    float64 `json:"redis_bytes_in"`
	RedisBytesOut   float64 `json:"redis_bytes_out"`
	// RedisScope is "private" when the figures come from the bench's own
	// redis-server, "shared" when other clients' traffic on the server is
	// included.
	RedisScope string `json:"redis_scope"`
	// Rows the bench database's tables took: inserted, updated, deleted
	// (pg_stat_user_tables), and their sum.
	PGRowsInserted float64 `json:"pg_rows_inserted"`
	PGRowsUpdated  float64 `json:"pg_rows_updated"`
	PGRowsDeleted  float64 `json:"pg_rows_deleted"`
	PGRowsWritten  float64 `json:"pg_rows_written"`
	// WALBytes is the WAL of the bench database's records and of the
	// transactions that wrote them (pg_walinspect), WALScope "database";
	// without pg_walinspect it is the whole cluster's WAL over the run,
	// WALScope "cluster" (other databases' writes included).
	WALBytes        float64 `json:"wal_bytes"`
	WALBytesCluster float64 `json:"wal_bytes_cluster"`
	WALScope        string  `json:"wal_scope"`
	// WALFPIBytes is the part of WALBytes that is full-page images: the
	// first change of a page after a checkpoint logs the whole page, so it
	// grows with the checkpoint frequency (here driven by the other
	// databases' WAL too). 0 with WALScope "cluster".
	WALFPIBytes float64 `json:"wal_fpi_bytes"`
	// RedisQueueBytesPerTask is the Redis memory one queued notification
	// takes (used_memory growth while N are enqueued with no worker), with
	// the payload size of the run (params.payload_bytes) included.
	RedisQueueBytesPerTask float64 `json:"redis_queue_bytes_per_task,omitempty"`
}

// costSnapshot is the counters a Costs is the difference of.
type costSnapshot struct {
	redis     map[string]int64 // INFO stats fields and "calls:<cmd>", "usec:<cmd>"
	rowsIns   int64
	rowsUpd   int64
	rowsDel   int64
	walInsert string // pg_current_wal_lsn()
	walFlush  string // pg_current_wal_flush_lsn()
}

// costSnapshot reads the counters. After a run (workersStopped), before
// reading Postgres's table statistics, it waits for the workers'
// connections to end: a backend publishes its counters at exit, or at most
// once a second while it runs.
func (b *bench) costSnapshot(ctx context.Context, workersStopped bool) (costSnapshot, error) {
	var s costSnapshot
	info, err := b.rdb.Info(ctx, "stats", "commandstats").Result()
	if err != nil {
		return s, fmt.Errorf("redis info: %w", err)
	}
	s.redis = parseRedisInfo(info)
	if workersStopped {
		if err := b.waitForeignBackendsGone(ctx); err != nil {
			return s, err
		}
	}
	conn, err := b.st.Pool().Acquire(ctx)
	if err != nil {
		return s, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
		return s, err
	}
	err = conn.QueryRow(ctx, `
		SELECT coalesce(sum(n_tup_ins), 0)::bigint, coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_del), 0)::bigint,
			pg_current_wal_lsn()::text, pg_current_wal_flush_lsn()::text
		FROM pg_stat_user_tables`).Scan(&s.rowsIns, &s.rowsUpd, &s.rowsDel, &s.walInsert, &s.walFlush)
	if err != nil {
		return s, fmt.Errorf("postgres counters: %w", err)
	}
	return s, nil
}

// waitForeignBackendsGone waits (up to 10 s) until the bench database has
// no connections but the bench's own pool's.
func (b *bench) waitForeignBackendsGone(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := b.st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()`).Scan(&n)
		if err != nil {
			return err
		}
		if n <= int(b.st.Pool().Stat().TotalConns()) || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// parseRedisInfo reads INFO's "field:value" lines; commandstats lines
// ("cmdstat_get:calls=3,usec=9,...") become "calls:get" and "usec:get".
func parseRedisInfo(info string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if cmd, isCmd := strings.CutPrefix(k, "cmdstat_"); isCmd {
			for _, kv := range strings.Split(v, ",") {
				name, val, _ := strings.Cut(kv, "=")
				if name == "calls" || name == "usec" {
					n, _ := strconv.ParseInt(val, 10, 64)
					out[name+":"+cmd] = n
				}
			}
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// costsBetween turns two snapshots around a run of n delivered
// notifications, and the run's CPU split, into per-notification costs.
func (b *bench) costsBetween(ctx context.Context, before, after costSnapshot, n int, cpu *CPUSplit) *Costs {
	per := func(v float64) float64 { return round(v/float64(n), 2) }
	c := &Costs{CPUMicros: map[string]float64{}, RedisCallsByCommand: map[string]float64{}, RedisScope: "shared"}
	if b.privateRedis != nil {
		c.RedisScope = "private"
	}
	for k, v := range cpu.Seconds {
		c.CPUMicros[k] = round(v*1e6/float64(n), 1)
	}
	delta := func(k string) float64 { return float64(after.redis[k] - before.redis[k]) }
	c.RedisCommands = per(delta("total_commands_processed"))
	c.RedisBytesIn = per(delta("total_net_input_bytes"))
	c.RedisBytesOut = per(delta("total_net_output_bytes"))
	var calls, usec float64
	for _, k := range slices.Sorted(maps.Keys(after.redis)) {
		if cmd, ok := strings.CutPrefix(k, "calls:"); ok && delta(k) > 0 {
			calls += delta(k)
			usec += delta("usec:" + cmd)
			c.RedisCallsByCommand[cmd] = per(delta(k))
		}
	}
	c.RedisCalls, c.RedisExecMicros = per(calls), per(usec)
	c.PGRowsInserted = per(float64(after.rowsIns - before.rowsIns))
	c.PGRowsUpdated = per(float64(after.rowsUpd - before.rowsUpd))
	c.PGRowsDeleted = per(float64(after.rowsDel - before.rowsDel))
	c.PGRowsWritten = round(c.PGRowsInserted+c.PGRowsUpdated+c.PGRowsDeleted, 2)
	ours, fpi, cluster, err := b.walBytes(ctx, before.walInsert, after.walFlush)
	c.WALBytesCluster = per(float64(cluster))
	if err != nil {
		b.prog.note(fmt.Sprintf("wal of the bench database alone not measured (%v): wal_bytes is the whole cluster's", err))
		c.WALBytes, c.WALScope = c.WALBytesCluster, "cluster"
	} else {
		c.WALBytes, c.WALFPIBytes, c.WALScope = per(float64(ours)), per(float64(fpi)), "database"
	}
	return c
}

// walBytes is the WAL between two positions: the bench database's part
// (records touching its relations, and the commit records of the
// transactions that wrote them, read with pg_walinspect) and the whole
// cluster's. WAL is one stream for every database of the server, and
// other tests write to it while the bench runs.
func (b *bench) walBytes(ctx context.Context, from, to string) (ours, fpi, cluster int64, err error) {
	pool := b.st.Pool()
	if err := pool.QueryRow(ctx, `SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::bigint`, from, to).Scan(&cluster); err != nil {
		return 0, 0, 0, err
	}
	if _, err := pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_walinspect`); err != nil {
		return 0, 0, cluster, fmt.Errorf("pg_walinspect: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// A block reference reads "rel <tablespace>/<database>/<relation>".
	err = pool.QueryRow(ctx, `
		WITH r AS (
			SELECT xid::text::bigint AS xid, record_length, fpi_length, coalesce(block_ref, '') AS block_ref
			FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)),
		ours AS (SELECT DISTINCT xid FROM r WHERE xid <> 0 AND block_ref ~ $3),
		mine AS (SELECT * FROM r WHERE block_ref ~ $3 OR xid IN (SELECT xid FROM ours))
		SELECT coalesce(sum(record_length), 0)::bigint, coalesce(sum(fpi_length), 0)::bigint FROM mine`,
		from, to, `rel [0-9]+/`+b.dbOID(ctx)+`/`).Scan(&ours, &fpi)
	if err != nil {
		return 0, 0, cluster, fmt.Errorf("pg_walinspect: %w", err)
	}
	return ours, fpi, cluster, nil
}

// reserveWAL keeps the server from removing the WAL written from now on
// until release, so that pg_walinspect can still read it after the run:
// other tests write WAL at the same time, and a checkpoint recycles
// segments. It is a temporary physical replication slot on a connection
// of its own: Postgres drops it when that connection ends, also when the
// bench dies. Without it (no free slot) the WAL figure may fall back to
// the whole cluster's.
func (b *bench) reserveWAL(ctx context.Context) (release func()) {
	conn, err := connect(ctx, b.dbURL)
	if err == nil {
		_, err = conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true, true)`, fmt.Sprintf("notifyd_bench_%d", os.Getpid()))
		if err != nil {
			conn.Close(context.Background())
		}
	}
	if err != nil {
		b.prog.note(fmt.Sprintf("wal not reserved for the run (%v)", err))
		return func() {}
	}
	return func() { conn.Close(context.Background()) }
}

func (b *bench) dbOID(ctx context.Context) string {
	var oid string
	_ = b.st.Pool().QueryRow(ctx, `SELECT oid::text FROM pg_database WHERE datname = current_database()`).Scan(&oid)
	return oid
}

// queueBytesPerTask measures the Redis memory of a queued notification:
// with no worker running, it enqueues k notifications through the Go
// client and divides the growth of used_memory by k. The queue is emptied
// before and after.
func (b *bench) queueBytesPerTask(ctx context.Context, k int) (float64, error) {
	if err := b.resetQueue(ctx); err != nil {
		return 0, err
	}
	used := func() (int64, error) {
		info, err := b.rdb.Info(ctx, "memory").Result()
		return parseRedisInfo(info)["used_memory"], err
	}
	before, err := used()
	if err != nil {
		return 0, err
	}
	rs := b.okReceivers
	err = b.produce(ctx, k, func(ctx context.Context, i int) error {
		_, _, err := b.notify(ctx, i, func(i int) (benchReceiver, string) { return rs[i%len(rs)], "mem-" + strconv.Itoa(i) })
		return err
	})
	if err != nil {
		return 0, err
	}
	after, err := used()
	if err != nil {
		return 0, err
	}
	if err := b.resetQueue(ctx); err != nil {
		return 0, err
	}
	return round(float64(after-before)/float64(k), 1), nil
}
