// Command notifyd is the notification service: one binary whose subcommands
// run the API, the delivery workers, the cron scheduler, or all three.
//
// It wires packages together and reads configuration; it must not hold
// delivery or API logic of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/buildinfo"
	"github.com/notifyd/notifyd/internal/circuit"
	"github.com/notifyd/notifyd/internal/config"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/redisurl"
	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/scheduler"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/tracing"
	"github.com/notifyd/notifyd/migrations"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/worker"
)

const usage = `notifyd: best-effort notification service

Usage: notifyd <command> [flags]

Commands:
  all        API, worker and scheduler in one process (applies migrations first)
  api        HTTP API: receivers, ingest, query
  worker     delivery worker
  scheduler  cron jobs: re-drive, retention, daily summary, receiver lifecycle
  migrate    apply database migrations and exit
  relay      outbox relay: moves a producer's outbox rows to notifyd (NOTIFYD_OUTBOX_DATABASE_URL),
             keeping each until notifyd's database (NOTIFYD_DATABASE_URL) has it
  outbox-schema  print the SQL of the producer's outbox table (-table name)
  rotate-secret-key  seal every receiver's signing secret with the first NOTIFYD_SECRET_KEYS key
             (plaintext ones too); safe to run while notifyd runs, and to run again
  operator-secret  print the signing secret of the operator receiver (NOTIFYD_OPERATOR_CALLBACK_URL's events)
  version    print the version

Each command takes its own flags, each also read from a NOTIFYD_* environment
variable: "notifyd <command> -h" lists them with their types and defaults.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, "notifyd", buildinfo.Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "outbox-schema":
		return outboxSchema(args, stdout, stderr)
	case "all", "api", "worker", "scheduler", "migrate", "relay", "rotate-secret-key", "operator-secret":
	default:
		fmt.Fprintf(stderr, "notifyd: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	cfg, err := config.LoadCommand(cmd, args, os.Getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "notifyd %s: %v\n(notifyd %s -h lists its flags)\n", cmd, err, cmd)
		return 2
	}
	logger := cfg.Logger(stderr).With("process", cmd)
	slog.SetDefault(logger)
	if !safeToStart(cfg, logger, stderr) {
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cmd == "rotate-secret-key" {
		return rotateSecretKey(ctx, cfg, stdout, logger)
	}
	if cmd == "operator-secret" {
		return operatorSecret(ctx, cfg, stdout, stderr, logger)
	}
	if err := start(ctx, cmd, cfg, logger); err != nil {
		if stoppedWhileStarting(ctx, cmd, err) {
			logger.Info("notifyd stopped by a signal while starting", "err", err)
			return 0
		}
		logger.Error("notifyd failed", "err", err)
		return 1
	}
	return 0
}

// stoppedWhileStarting tells a SIGTERM or SIGINT that cut start-up short
// (a step that was waiting on Postgres or Redis returns the cancelled
// context) from a failure: an orchestrator that stops a process it has just
// started is not told it failed. `notifyd migrate` is a job, not a service:
// cut short, it did not do its work.
func stoppedWhileStarting(ctx context.Context, cmd string, err error) bool {
	return cmd != "migrate" && ctx.Err() != nil && errors.Is(err, context.Canceled)
}

func start(ctx context.Context, cmd string, cfg *config.Config, logger *slog.Logger) error {
	logger.Info("notifyd starting", "version", buildinfo.Version, "command", cmd)
	if cmd != "migrate" {
		flush, err := tracing.Setup(ctx, cmd, logger)
		if err != nil {
			return err
		}
		defer flushTraces(flush, logger)
	}
	if cmd == "relay" {
		return runRelay(ctx, cfg, logger) // reads notifyd's database, does not migrate it
	}
	if cmd == "migrate" || (cmd == "all" && !cfg.NoMigrate) {
		if err := migrations.Up(ctx, cfg.DatabaseURL, logger); err != nil {
			return err
		}
		if err := sealPlaintextSecrets(ctx, cfg, logger); err != nil {
			return err
		}
		if cmd == "migrate" {
			logger.Info("database is up to date")
			return nil
		}
	}
	st, err := store.OpenWithOptions(ctx, cfg.DatabaseURL, store.Options{StatementTimeout: cfg.StatementTimeout})
	if err != nil {
		return err
	}
	defer st.Close()
	st.SetSecretKeys(cfg.SecretKeys)
	// One client, shared with Asynq; with a Sentinel URL it follows the
	// master through failovers.
	rdb, _, err := config.Redis(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("NOTIFYD_REDIS_URL: %w", err)
	}
	defer rdb.Close()
	if err := checkRedisMode(ctx, rdb); err != nil {
		return err
	}

	var components []func(context.Context) error
	runAPI := cmd == "all" || cmd == "api"
	if runAPI {
		queue := asynq.NewClientFromRedisClient(rdb)
		defer queue.Close()
		api := query.New(st, rdb, tasks.Sharded{Enqueuer: queue, Shards: cfg.QueueShards}, query.Config{
			AdminToken: cfg.AdminToken, ProducerTokens: cfg.ProducerTokens, MaxPayload: cfg.MaxPayload,
			Targets: cfg.Targets, Retry: cfg.Retry, Logger: logger.With("component", "api"), TaskKeys: cfg.TaskKeys,
			RateLimits: query.RateLimits{
				Admin: apiRate(cfg.RateLimitAdmin), Producer: apiRate(cfg.RateLimitProducer),
				Receiver: apiRate(cfg.RateLimitReceiver), AuthFailures: apiRate(cfg.RateLimitAuthFailures),
			},
			TrustedProxies: cfg.TrustedProxies, RequestTimeout: cfg.RequestTimeout, ListMaxBytes: cfg.ListMaxBytes,
		})
		components = append(components, func(ctx context.Context) error { return api.Run(ctx, cfg.HTTPAddr) })
	}
	if cmd == "all" || cmd == "worker" {
		w := worker.New(st, rdb, worker.Config{
			Concurrency: cfg.WorkerConcurrency, Retry: cfg.Retry, DefaultTimeout: cfg.DeliveryTimeout,
			Targets: cfg.Targets, ShutdownTimeout: cfg.ShutdownTimeout, Logger: logger, TaskKeys: cfg.TaskKeys,
			ReceiverConcurrency: cfg.ReceiverConcurrency, QueueShards: cfg.QueueShards,
			Breaker: worker.BreakerConfig{Failures: cfg.BreakerFailures, Cooldown: cfg.BreakerCooldown},
		})
		components = append(components, w.Run)
	}
	if cmd == "all" || cmd == "scheduler" {
		components = append(components, func(ctx context.Context) error {
			return runScheduler(ctx, st, rdb, cfg, logger)
		})
	}
	// Every process serves probes, readiness detail and metrics on the ops
	// listener, apart from the API port that faces clients.
	components = append(components, func(ctx context.Context) error {
		return serveOps(ctx, cfg.OpsAddr, st, rdb, logger,
			metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(rdb), tasks.Queues(cfg.QueueShards), metrics.QueueCacheTTL),
			metrics.NewDBPoolCollector(map[string]*pgxpool.Pool{"notifyd": st.Pool()}),
			metrics.NewRedisPoolCollector(rdb),
			metrics.NewCircuitCollector(func(ctx context.Context) (int64, error) { return circuit.CountOpen(ctx, rdb) }))
	})
	components = append(components, func(ctx context.Context) error {
		// Producers' Go clients check receivers against this registry.
		registry.Keep(ctx, st, rdb, 30*time.Second, logger)
		return nil
	})
	if cmd == "all" || cmd == "worker" {
		// Producers' Go clients queue on the workers' shard count.
		components = append(components, func(ctx context.Context) error {
			registry.KeepQueueShards(ctx, rdb, cfg.QueueShards, 30*time.Second, logger)
			return nil
		})
	}
	return runAll(ctx, components)
}

// checkRedisMode refuses a single-node URL that names a Redis Cluster node
// (redisurl.CheckClusterMode), within 5 s.
func checkRedisMode(ctx context.Context, rdb redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := redisurl.CheckClusterMode(ctx, rdb); err != nil {
		return fmt.Errorf("NOTIFYD_REDIS_URL: %w", err)
	}
	return nil
}

// flushTraces sends the spans still buffered, after every component has
// stopped (their last spans included), within 5 s.
func flushTraces(flush tracing.Shutdown, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := flush(ctx); err != nil {
		logger.Warn("tracing: flushing spans at shutdown failed", "err", err)
	}
}

// runAll runs every component until ctx ends or one fails; a failure stops
// the others, so the process exits and its supervisor restarts it.
func runAll(ctx context.Context, components []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(components))
	for _, c := range components {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c(ctx); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return errors.Join(collect(errc)...)
}

func collect(errc <-chan error) []error {
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errs
}

// runScheduler runs the cron jobs (re-drive, retention, daily summary,
// receiver lifecycle) until
// ctx ends. Every replica may run it: each job locks itself in Postgres.
func runScheduler(ctx context.Context, st *store.Store, rdb redis.UniversalClient, cfg *config.Config, logger *slog.Logger) error {
	// Shares rdb's connections; closing rdb (in start) is what releases them.
	queue := tasks.Sharded{Enqueuer: asynq.NewClientFromRedisClient(rdb), Shards: cfg.QueueShards}
	sched, err := scheduler.New(st, queue, scheduler.Config{
		Redis:           rdb,
		RedriveSchedule: cfg.RedriveSchedule, RetentionSchedule: cfg.RetentionSchedule,
		SummarySchedule: cfg.SummarySchedule, GaugesSchedule: cfg.GaugesSchedule, Retention: cfg.Retention, Logger: logger, TaskKeys: cfg.TaskKeys,
		LifecycleSchedule: cfg.Lifecycle.Schedule, FailingAfter: cfg.Lifecycle.FailingAfter,
		AutoDisableAfter: cfg.Lifecycle.AutoDisableAfter, Retry: cfg.Retry,
	})
	if err != nil {
		return err
	}
	if err := ensureOperator(ctx, st, cfg, logger); err != nil {
		return err
	}
	return sched.Run(ctx)
}

// apiRate turns a rate limit setting into the API's form ("off": negative).
func apiRate(r config.RateLimit) query.Rate {
	if r.Off() {
		return query.Rate{PerSecond: -1}
	}
	return query.Rate{PerSecond: r.PerSecond, Burst: r.Burst}
}

// serveOps serves /healthz, /readyz with the error detail the public API
// port keeps to the log, and /metrics, on NOTIFYD_OPS_ADDR: an address
// only operators and Prometheus reach. /metrics serves the process-wide
// metrics and collectors, which read this run's queue and pools when
// scraped; they are registered for this run only, so several runs in one
// process (tests) do not collide.
func serveOps(ctx context.Context, addr string, st *store.Store, rdb redis.UniversalClient, logger *slog.Logger, collectors ...prometheus.Collector) error {
	reg := prometheus.NewRegistry()
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("ops metrics: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := errors.Join(st.Ping(ctx), rdb.Ping(ctx).Err()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `{"ready":false,"error":%q}`, err.Error())
			return
		}
		io.WriteString(w, `{"ready":true}`)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, reg}, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn), ErrorHandling: promhttp.ContinueOnError,
	}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ops listen %s: %w", addr, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	logger.Info("ops endpoints listening", "addr", ln.Addr().String())
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
