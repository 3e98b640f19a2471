package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/buildinfo"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tasks"
)

// Config tunes a worker. Zero values take the documented defaults.
type Config struct {
	// Concurrency is how many deliveries run at once (default 100).
	Concurrency int
	// Retry is the service-wide retry policy receivers inherit (default retry.Default()).
	Retry retry.Policy
	// DefaultTimeout bounds one attempt (default 10 s); MaxTimeout caps a
	// receiver's own setting (default 30 s).
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
	// Targets decides which callback addresses may be dialled.
	Targets netguard.Policy
	// ReceiverConcurrency caps deliveries in flight to one receiver across
	// all worker processes (default 20; negative: no cap).
	ReceiverConcurrency int
	// Breaker tunes the per-receiver circuit breaker.
	Breaker BreakerConfig
	// ShutdownTimeout is how long in-flight deliveries may take to finish
	// after SIGTERM before they are handed back to the queue (default 30 s).
	ShutdownTimeout time.Duration
	// PollInterval is how often idle workers look for new tasks and
	// scheduled retries become due (default 20 ms; Asynq's own default of
	// 1 s adds up to a second of latency to every notification).
	PollInterval time.Duration
	// TaskKeys verifies every task and seals the retries the worker queues
	// (NOTIFYD_TASK_KEY). Nil: tasks are neither required to be signed nor
	// signed (development).
	TaskKeys *taskauth.Keyring
	// QueueShards is NOTIFYD_QUEUE_SHARDS: the shard queues this worker
	// consumes (besides the unsharded ones and any other shard queue that
	// exists when it starts) and queues retries on. 0 or 1: unsharded.
	QueueShards int
	Logger      *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 100
	}
	if c.Retry.MaxAttempts == 0 {
		c.Retry = retry.Default()
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = 10 * time.Second
	}
	if c.MaxTimeout <= 0 {
		c.MaxTimeout = 30 * time.Second
	}
	if c.ReceiverConcurrency == 0 {
		c.ReceiverConcurrency = 20
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 20 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Worker is a delivery worker process.
type Worker struct {
	cfg      Config
	rdb      redis.UniversalClient
	server   *asynq.Server
	serverMu sync.Mutex // guards server, built by Run
	asynqCfg asynq.Config
	client   *asynq.Client
	recorder *recorder
	starter  *starter
	handler  *handler
}

// New builds a worker on an open store and Redis client. It does not start
// anything; call Run.
func New(s *store.Store, rdb redis.UniversalClient, cfg Config) *Worker {
	cfg.setDefaults()
	logger := cfg.Logger.With("component", "worker")
	w := &Worker{cfg: cfg, rdb: rdb, client: asynq.NewClientFromRedisClient(rdb)}
	w.recorder = newRecorder(s, logger, 512)
	w.starter = newStarter(s, 256)
	w.handler = &handler{
		receivers: newReceiverCache(s, cfg.Retry),
		recorder:  w.recorder,
		starter:   w.starter,
		deliverer: newDeliverer(cfg.Targets, buildinfo.UserAgent()),
		// A slot's lease outlives the longest attempt, so only a dead
		// worker's slots ever expire.
		semaphore:      newSemaphore(rdb, cfg.ReceiverConcurrency, cfg.MaxTimeout+10*time.Second, logger),
		latency:        &latencies{},
		breakers:       newFleetBreakers(newBreakers(cfg.Breaker, cfg.MaxTimeout+5*time.Second, logger), rdb, logger),
		queue:          tasks.Sharded{Enqueuer: w.client, Shards: cfg.QueueShards},
		failer:         s,
		contents:       s,
		rdb:            rdb,
		keys:           cfg.TaskKeys,
		logger:         logger,
		defaultTimeout: cfg.DefaultTimeout,
		maxTimeout:     cfg.MaxTimeout,
		deliveries:     newDeliveryLimit(cfg.Concurrency),
		members:        newBatchMembers(),
		inspector:      asynq.NewInspectorFromRedisClient(rdb),
	}
	w.asynqCfg = asynq.Config{
		Concurrency:              cfg.Concurrency,
		RetryDelayFunc:           retryDelay,
		TaskCheckInterval:        cfg.PollInterval,
		DelayedTaskCheckInterval: cfg.PollInterval,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		Logger:                   asynqLogger{logger},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			var rl *retryLater
			if errors.As(err, &rl) {
				logger.Debug("delivery deferred", "task_id", taskID(ctx), "reason", rl.err, "after", rl.after)
				return
			}
			logger.Warn("task handed back", "task_id", taskID(ctx), "err", err)
		}),
	}
	return w
}

// queueWeights reads which queues exist in Redis and returns the weights
// the worker consumes them with (tasks.ShardedWeights): its own shards, the
// unsharded queues and every other delivery queue found, so that tasks
// queued under another shard count are not stranded. Redis not answering
// leaves out only the others.
func (w *Worker) queueWeights(ctx context.Context) map[string]int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	existing, err := w.rdb.SMembers(ctx, asynqQueuesKey).Result()
	if err != nil {
		w.cfg.Logger.Warn("worker: listing existing queues failed; consuming only this worker's own", "err", err)
	}
	return tasks.ShardedWeights(w.cfg.QueueShards, existing)
}

// asynqQueuesKey is Asynq's set of every queue a task was ever queued in
// (base.AllQueues).
const asynqQueuesKey = "asynq:queues"

func taskID(ctx context.Context) string {
	id, _ := asynq.GetTaskID(ctx)
	return id
}

// Run processes tasks until ctx is cancelled, then shuts down gracefully:
// in-flight deliveries get ShutdownTimeout to finish and record their
// attempts; whatever is still running after that is handed back to Redis.
func (w *Worker) Run(ctx context.Context) error {
	w.recorder.start()
	w.starter.start()
	w.handler.semaphore.start()
	w.handler.breakers.start()
	cfg := w.asynqCfg
	cfg.Queues = w.queueWeights(ctx)
	w.serverMu.Lock()
	w.server = asynq.NewServerFromRedisClient(w.rdb, cfg)
	w.serverMu.Unlock()
	if err := w.server.Start(w.handler); err != nil {
		w.recorder.close(time.Second)
		w.starter.close()
		w.handler.semaphore.close()
		w.handler.breakers.close()
		return fmt.Errorf("start worker: %w", err)
	}
	w.cfg.Logger.Info("worker started", "concurrency", w.cfg.Concurrency, "max_attempts", w.cfg.Retry.MaxAttempts,
		"queue_shards", max(w.cfg.QueueShards, 1), "queues", len(cfg.Queues))
	<-ctx.Done()
	deadline := time.Now().Add(w.cfg.ShutdownTimeout)
	w.cfg.Logger.Info("worker stopping: finishing in-flight deliveries", "timeout", w.cfg.ShutdownTimeout)
	// Members of batches not started yet are handed on at once rather than
	// waiting for a slot while the shutdown timeout runs.
	w.handler.deliveries.stop()
	w.server.Shutdown()
	// Batch members that outlived their batch (each guarded by its own
	// task) get the rest of the shutdown timeout, as other deliveries do.
	w.handler.members.finish(time.Until(deadline), 5*time.Second)
	w.handler.semaphore.close() // no delivery runs any more: give every slot back
	w.handler.breakers.close()
	w.recorder.close(10 * time.Second)
	w.starter.close()
	w.client.Close()
	w.cfg.Logger.Info("worker stopped")
	return nil
}

// Ping reports whether the worker's Redis answers (readiness).
func (w *Worker) Ping() error {
	w.serverMu.Lock()
	srv := w.server
	w.serverMu.Unlock()
	if srv == nil {
		return errors.New("worker: not started")
	}
	return srv.Ping()
}

// asynqLogger routes Asynq's own logs into slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
