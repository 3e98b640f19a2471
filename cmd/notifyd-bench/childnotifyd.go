package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	notifydconfig "github.com/notifyd/notifyd/internal/config"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/worker"
)

// runNotifyd runs notifyd's worker (and optionally its API) as cmd/notifyd
// does, with the bench's settings.
func runNotifyd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("notifyd", flag.ContinueOnError)
	dbURL := fs.String("database-url", "", "")
	cf := newConsumerFlags(fs)
	withWorker := fs.Bool("worker", true, "")
	withAPI := fs.Bool("api", false, "")
	cpuprofile := fs.String("cpuprofile", "", "")
	adminToken := fs.String("admin-token", "", "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stopProfile, err := startProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	rdb, err := cf.redis()
	if err != nil {
		return err
	}
	defer rdb.Close()
	targets := netguard.Policy{AllowPrivate: true}
	var wg sync.WaitGroup
	var errs []error
	var mu sync.Mutex
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	info := map[string]string{}
	if *withWorker {
		w := worker.New(st, rdb, worker.Config{
			Concurrency: cf.concurrency, Targets: targets, ShutdownTimeout: 2 * time.Second, Logger: logger,
			QueueShards: queueShards(),
		})
		run(func() error { return w.Run(ctx) })
	}
	if *withAPI {
		queue := asynq.NewClientFromRedisClient(rdb)
		defer queue.Close()
		api := query.New(st, rdb, tasks.Sharded{Enqueuer: queue, Shards: queueShards()}, query.Config{AdminToken: *adminToken, Targets: targets, Logger: logger})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		info["api"] = "http://" + ln.Addr().String()
		run(func() error { return api.Serve(ctx, ln) })
	}
	// Asynq's server starts its fetch loop asynchronously; give it a moment
	// so the measurement does not include process start-up.
	time.Sleep(300 * time.Millisecond)
	ready(info)
	wg.Wait()
	printStats()
	return errors.Join(errs...)
}

// queueShards is NOTIFYD_QUEUE_SHARDS from the bench's environment, which
// its children inherit (default 1): the worker's and the API's shard count,
// and what the bench publishes for its Go client (syncRegistry).
func queueShards() int {
	n, err := strconv.Atoi(os.Getenv("NOTIFYD_QUEUE_SHARDS"))
	if err != nil || n < 1 {
		return 1
	}
	return min(n, tasks.MaxQueueShards)
}

// startProfile profiles the process into path ("": no profile) until the
// returned stop is called.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// consumerFlags are the flags of a child that consumes the bench's queue
// (bench.consumerArgs gives them).
type consumerFlags struct {
	redisAddr   string
	redisDB     int
	concurrency int
}

func newConsumerFlags(fs *flag.FlagSet) *consumerFlags {
	f := &consumerFlags{}
	fs.StringVar(&f.redisAddr, "redis-addr", "", "")
	fs.IntVar(&f.redisDB, "redis-db", 0, "")
	fs.IntVar(&f.concurrency, "concurrency", 100, "")
	return f
}

// redis is the child's client, built like notifyd's own (cmd/notifyd), so
// that the worker and the no-op consumer measure the same client.
func (f *consumerFlags) redis() (*redis.Client, error) {
	opt, err := notifydconfig.RedisOptions(fmt.Sprintf("redis://%s/%d", f.redisAddr, f.redisDB))
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// printStats reports, on a "stats" line, the mean rows per statement of the
// worker's two batched writes (what batching achieved during the run) and
// how many deliveries it deferred, by reason.
func printStats() {
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return
	}
	stats := map[string]float64{}
	for _, f := range families {
		if f.GetName() == "notifyd_deliveries_deferred_total" {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					stats["deferred_"+l.GetValue()] += m.GetCounter().GetValue()
				}
			}
			continue
		}
		name, ok := map[string]string{
			"notifyd_begin_batch_size":    "begin_rows_per_statement",
			"notifyd_recorder_batch_size": "record_rows_per_statement",
		}[f.GetName()]
		if !ok || len(f.GetMetric()) == 0 {
			continue
		}
		if h := f.GetMetric()[0].GetHistogram(); h.GetSampleCount() > 0 {
			stats[name] = round(h.GetSampleSum()/float64(h.GetSampleCount()), 1)
		}
	}
	b, _ := json.Marshal(stats)
	fmt.Printf("stats %s\n", b)
}
