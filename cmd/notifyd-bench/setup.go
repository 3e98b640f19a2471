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

func (b *bench) setup(ctx context.Context) (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	cfg := b.cfg
	b.logDir, err = os.MkdirTemp("", "notifyd-bench-")
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, func() {
		if !cfg.keep && len(b.res.Errors) == 0 {
			os.RemoveAll(b.logDir)
		} else {
			b.prog.note("child process logs kept in " + b.logDir)
		}
	})

	b.rdb = redis.NewClient(&redis.Options{Addr: cfg.redisAddr, DB: cfg.redisDB, PoolSize: 4 * cfg.producers})
	undo = append(undo, func() { b.rdb.Close() })
	if !cfg.noRedisClaim {
		release, err := claimRedisDB(ctx, cfg.redisAddr, cfg.redisDB, b.prog.note)
		if err != nil {
			return cleanup, err
		}
		undo = append(undo, release)
	}
	if err := b.rdb.FlushDB(ctx).Err(); err != nil {
		return cleanup, fmt.Errorf("flush redis db %d: %w", cfg.redisDB, err)
	}
	undo = append(undo, func() { b.rdb.FlushDB(context.Background()) })

	b.dbName = fmt.Sprintf("notifyd_bench_%d", os.Getpid())
	b.prog.note(fmt.Sprintf("setup: database %s, redis db %d, %d cores", b.dbName, cfg.redisDB, runtime.NumCPU()))
	// Registered before the database exists, so a failure half way through
	// creating or migrating it leaves nothing behind.
	undo = append(undo, func() {
		if cfg.keep {
			b.prog.note("kept database " + b.dbName)
			return
		}
		if err := dropDatabase(cfg.databaseURL, b.dbName); err != nil {
			b.prog.note(fmt.Sprintf("could not drop database %s: %v", b.dbName, err))
		}
	})
	b.dbURL, err = createDatabase(ctx, cfg.databaseURL, b.dbName)
	if err != nil {
		return cleanup, err
	}
	b.st, err = store.Open(ctx, b.dbURL)
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, b.st.Close)
	b.res.Env = collectEnv(ctx, b.dbURL, b.rdb)
	b.res.Params = map[string]any{
		"n": cfg.n, "receivers": cfg.receivers, "concurrency": cfg.concurrency, "producers": cfg.producers,
		"payload_bytes": cfg.payloadBytes, "rate": cfg.rate, "duration_s": cfg.duration.Seconds(), "retry_n": cfg.retryN,
		"retry_intervals": durStrings(cfg.retryIntervals), "iso_n": cfg.isoN, "hang_timeout_s": cfg.hangTimeout.Seconds(),
		"query_rows": cfg.queryRows, "query_receivers": cfg.queryReceivers, "query_conns": cfg.queryConns,
		"query_duration_s": cfg.queryDuration.Seconds(), "scenarios": cfg.scenarios, "smoke": cfg.smoke, "repeat": cfg.repeat,
	}
	b.sampler = &cpuSampler{databases: []string{b.dbName, b.queryDBName()}, roles: b.roleMap}

	b.recv, err = b.startChild(ctx, "receiver")
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { b.stopChild(b.recv) })
	b.recvURL = b.recv.ready["url"]

	if err := b.createReceivers(ctx); err != nil {
		return cleanup, err
	}
	if err := syncRegistry(ctx, b.st, b.rdb); err != nil {
		return cleanup, err
	}
	b.client = notifier.NewFromRedisClient(b.rdb, notifier.WithAllowPrivateTargets(true))
	undo = append(undo, func() { b.client.Close() })
	b.queue = asynq.NewClientFromRedisClient(b.rdb)
	undo = append(undo, func() { b.queue.Close() })
	return cleanup, nil
}

func durStrings(ds []time.Duration) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}
