package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/tasks"
)

// runNoop consumes notifyd's own task type with a handler that does nothing,
// on an Asynq server configured exactly as notifyd's worker configures its
// own: this is the queue's ceiling on the same Redis.
func runNoop(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("noop", flag.ContinueOnError)
	cf := newConsumerFlags(fs)
	queueLayout := fs.String("queues", "notifyd", `"notifyd" (the worker's weighted queues) or "single" (notifyd's first-attempt queue only)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	queues := tasks.ShardedWeights(queueShards(), nil)
	if *queueLayout == "single" {
		// The first-attempt queue, or with shards every shard's.
		queues = map[string]int{}
		for _, q := range tasks.Queues(queueShards()) {
			if !strings.HasPrefix(q, tasks.QueueRetry) {
				queues[q] = 1
			}
		}
	}
	rdb, err := cf.redis()
	if err != nil {
		return err
	}
	defer rdb.Close()
	var count, last atomic.Int64
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cf.concurrency,
		Queues:                   queues,
		TaskCheckInterval:        20 * time.Millisecond, // the worker's default PollInterval
		DelayedTaskCheckInterval: 20 * time.Millisecond,
		ShutdownTimeout:          2 * time.Second,
		LogLevel:                 asynq.WarnLevel,
	})
	err = srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		count.Add(1)
		last.Store(time.Now().UnixNano())
		return nil
	}))
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_stats", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"processed":%d,"last_ns":%d}`, count.Load(), last.Load())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	ready(map[string]string{"stats": "http://" + ln.Addr().String() + "/_stats"})
	serveUntil(ctx, ln, mux)
	return nil
}
