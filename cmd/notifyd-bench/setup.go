package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/notifier"
)

// setup prepares what every scenario shares: a log directory for the
// children, the claimed Redis database, a fresh migrated database, the
// receiver child, the receivers and the clients. cleanup undoes what was
// done, last first, also after an error half way.
func (b *bench) setup(ctx context.Context) (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	push := func(f func()) { undo = append(undo, f) }
	steps := []func(context.Context, func(func())) error{b.setupLogDir, b.setupRedis, b.setupDatabase, b.setupReceivers}
	for _, step := range steps {
		if err := step(ctx, push); err != nil {
			return cleanup, err
		}
	}
	b.client = notifier.NewFromRedisClient(b.rdb, notifier.WithAllowPrivateTargets(true))
	push(func() { b.client.Close() })
	b.queue = asynq.NewClientFromRedisClient(b.rdb)
	push(func() { b.queue.Close() })
	return cleanup, nil
}

func (b *bench) setupLogDir(_ context.Context, push func(func())) error {
	var err error
	if b.logDir, err = os.MkdirTemp("", "notifyd-bench-"); err != nil {
		return err
	}
	push(func() {
		if !b.cfg.keep && len(b.res.Errors) == 0 {
			os.RemoveAll(b.logDir)
		} else {
			b.prog.note("child process logs kept in " + b.logDir)
		}
	})
	return nil
}

func (b *bench) setupRedis(ctx context.Context, push func(func())) error {
	cfg := b.cfg
	if cfg.redisAddr == privateRedisAddr {
		r, err := startPrivateRedis(ctx, b.logDir)
		if err != nil {
			return err
		}
		push(r.stop)
		b.privateRedis = r
		// Nobody else uses this server: no claim, database 0.
		cfg.redisAddr, cfg.redisDB, cfg.noRedisClaim = r.addr, 0, true
	}
	b.rdb = redis.NewClient(&redis.Options{Addr: cfg.redisAddr, DB: cfg.redisDB, PoolSize: 4 * cfg.producers})
	push(func() { b.rdb.Close() })
	if !cfg.noRedisClaim {
		release, err := claimRedisDB(ctx, cfg.redisAddr, cfg.redisDB, b.prog.note)
		if err != nil {
			return err
		}
		push(release)
	}
	if err := b.rdb.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flush redis db %d: %w", cfg.redisDB, err)
	}
	push(func() { b.rdb.FlushDB(context.Background()) })
	return nil
}

func (b *bench) setupDatabase(ctx context.Context, push func(func())) error {
	cfg := b.cfg
	b.dbName = fmt.Sprintf("notifyd_bench_%d", os.Getpid())
	b.prog.note(fmt.Sprintf("setup: database %s, redis db %d, %d cores", b.dbName, cfg.redisDB, runtime.NumCPU()))
	// Registered before the database exists, so a failure half way through
	// creating or migrating it leaves nothing behind.
	push(func() {
		if cfg.keep {
			b.prog.note("kept database " + b.dbName)
			return
		}
		if err := dropDatabase(cfg.databaseURL, b.dbName); err != nil {
			b.prog.note(fmt.Sprintf("could not drop database %s: %v", b.dbName, err))
		}
	})
	var err error
	if b.dbURL, err = createDatabase(ctx, cfg.databaseURL, b.dbName); err != nil {
		return err
	}
	if b.st, err = store.Open(ctx, b.dbURL); err != nil {
		return err
	}
	push(b.st.Close)
	b.res.Env = collectEnv(ctx, b.dbURL, b.rdb)
	b.res.Params = b.params()
	b.sampler = &cpuSampler{databases: []string{b.dbName, b.queryDBName()}, roles: b.roleMap}
	if b.privateRedis != nil {
		b.sampler.redisPID = b.privateRedis.pid()
	}
	return nil
}

// params are the sizes of the run, in the JSON line, so that two lines can
// be compared knowing they measured the same thing.
func (b *bench) params() map[string]any {
	cfg := b.cfg
	return map[string]any{
		"n": cfg.n, "receivers": cfg.receivers, "concurrency": cfg.concurrency, "producers": cfg.producers, "ingest_conns": cfg.ingestConns, "ingest_batch": cfg.ingestBatch,
		"payload_bytes": cfg.payloadBytes, "rate": cfg.rate, "duration_s": cfg.duration.Seconds(), "retry_n": cfg.retryN,
		"retry_intervals": durStrings(cfg.retryIntervals), "iso_n": cfg.isoN, "hang_timeout_s": cfg.hangTimeout.Seconds(),
		"query_rows": cfg.queryRows, "query_receivers": cfg.queryReceivers, "query_conns": cfg.queryConns,
		"query_duration_s": cfg.queryDuration.Seconds(), "scenarios": cfg.scenarios, "smoke": cfg.smoke, "repeat": cfg.repeat,
		"workers": cfg.scale.workers, "queue_shards": cfg.scale.queueShards, "private_redis": b.privateRedis != nil,
	}
}

func (b *bench) setupReceivers(ctx context.Context, push func(func())) error {
	var err error
	if b.recv, err = b.startChild(ctx, "receiver"); err != nil {
		return err
	}
	push(func() { b.stopChild(b.recv) })
	b.recvURL = b.recv.ready["url"]
	if err := b.createReceivers(ctx); err != nil {
		return err
	}
	return syncRegistry(ctx, b.st, b.rdb)
}

func durStrings(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

// resetQueue empties the bench's Redis database between runs (leftover
// tasks of one scenario must not load the next), republishes the receiver
// registry and clears the receiver's records.
func (b *bench) resetQueue(ctx context.Context) error {
	if err := b.rdb.FlushDB(ctx).Err(); err != nil {
		return err
	}
	if err := syncRegistry(ctx, b.st, b.rdb); err != nil {
		return err
	}
	resp, err := b.http.Post(b.recvURL+"/_reset", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// startNotifyd starts a fresh notifyd worker for one run on an empty queue.
// Before it starts, the bench's tables are analysed: the set-up created the
// receivers and earlier runs left their notifications and attempts, and
// this machine runs Postgres with autovacuum off, so without ANALYZE the
// planner would plan notifyd's statements on no statistics at all, which no
// deployment does.
func (b *bench) startNotifyd(ctx context.Context, extra ...string) (*child, error) {
	if err := b.resetQueue(ctx); err != nil {
		return nil, err
	}
	if err := analyze(ctx, b.st.Pool(), benchTables...); err != nil {
		return nil, err
	}
	return b.startChild(ctx, "notifyd", b.notifydArgs(b.dbURL, extra...)...)
}
