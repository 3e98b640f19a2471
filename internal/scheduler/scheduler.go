// Package scheduler runs notifyd's cron jobs (`notifyd scheduler`, and
// `notifyd all`):
//
//   - re-drive (redrive.go): queues again the pending notifications whose task
//     is missing from Redis (Redis restarted empty, an enqueue failed);
//   - retention (retention.go): deletes terminal notifications and their
//     attempts once they are older than the retention;
//   - summary (summary.go): stores and logs each receiver's daily counts and
//     failure rate, which the query API serves;
//   - gauges (gauges.go): refreshes the metrics of what the database holds
//     (notifications by status, receivers by state, the oldest due
//     notification's wait); read-only, so it runs on every replica, unlocked.
//   - lifecycle (lifecycle.go): marks receivers failing, disables them and
//     announces their recovery, with operational events (internal/lifecycle).
//
// Every replica may run a scheduler: each job takes a Postgres advisory lock
// of its own for the length of a run and skips the run if another replica
// holds it, so a job never runs twice at once. The jobs are idempotent, so a
// lock lost with its connection costs at most some repeated work.
//
// Schedules use robfig/cron syntax with an optional seconds field ("0 0 * * *",
// "*/30 * * * * *", "@every 1m", "@daily") in UTC; "off" disables a job.
// Each job is also a method (RunRedrive, RunRetention, RunSummary,
// RunGauges, RunLifecycle) that runs it once, now, under the same lock
// (gauges: none).
//
// The jobs' SQL lives in internal/store; this package must not deliver
// notifications itself (a re-drive only queues tasks for the workers).
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"

	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tasks"
)

// Job names, as they appear in logs and metrics.
const (
	JobRedrive   = "redrive"
	JobRetention = "retention"
	JobSummary   = "summary"
	JobGauges    = "gauges"
	JobLifecycle = "lifecycle"
)

// Advisory lock keys, one per job. They only have to be distinct from the
// other advisory locks taken in notifyd's database (goose's migration lock).
const (
	lockRedrive   int64 = 0x6e6f74696679_0001 // "notify" + job number
	lockRetention int64 = 0x6e6f74696679_0002
	lockSummary   int64 = 0x6e6f74696679_0003
	lockLifecycle int64 = 0x6e6f74696679_0004
)

// Off as a schedule disables a job.
const Off = "off"

// Config tunes the scheduler. Zero values take the documented defaults.
type Config struct {
	// Schedules of the jobs (defaults "@every 1m", "@every 1h", "0 0 * * *",
	// "@every 1m").
	RedriveSchedule   string
	RetentionSchedule string
	SummarySchedule   string
	// GaugesSchedule refreshes the database gauges (default "@every 30s").
	GaugesSchedule    string
	LifecycleSchedule string

	// FailingAfter and AutoDisableAfter: how long every attempt to a
	// receiver must have failed before it is marked failing, and disabled
	// (zero: never; defaults are the caller's, config's 24 h and 120 h).
	FailingAfter     time.Duration
	AutoDisableAfter time.Duration
	// Retry is the service retry policy, for the operational events'
	// attempts (default retry.Default()).
	Retry retry.Policy

	// Retention is how long terminal notifications and their attempts are
	// kept (default 720 h, 30 days).
	Retention time.Duration
	// RetentionBatch is how many notifications one DELETE removes (default
	// 5,000), and RetentionPause the pause between two of them (default
	// 100 ms), which leaves room to vacuum and replication.
	RetentionBatch int
	RetentionPause time.Duration

	// RedriveGrace is how long past its due time a pending notification must
	// be before the re-drive looks for its task (default 30 s), so that
	// notifications just being ingested, processed or slightly late are left
	// to the path that is already handling them.
	RedriveGrace time.Duration
	// RedriveBatch is how many notifications one re-drive query reads
	// (default 1,000).
	RedriveBatch int

	// Location of the cron schedules (default UTC, which is also how
	// summary days are cut).
	Location *time.Location
	Logger   *slog.Logger
	// TaskKeys seals the tasks the re-drive queues (NOTIFYD_TASK_KEY; nil:
	// unsigned).
	TaskKeys *taskauth.Keyring
	// Redis is the queue's Redis: with it the re-drive queues a page's
	// tasks in batches (internal/enqueue, whose markers live there); nil
	// queues them one by one through the queue alone.
	Redis redis.UniversalClient
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.RedriveSchedule, "@every 1m")
	def(&c.RetentionSchedule, "@every 1h")
	def(&c.SummarySchedule, "0 0 * * *")
	def(&c.GaugesSchedule, "@every 30s")
	def(&c.LifecycleSchedule, "@every 1m")
	if c.Retry.MaxAttempts == 0 {
		c.Retry = retry.Default()
	}
	if c.Retention == 0 {
		c.Retention = 30 * 24 * time.Hour
	}
	if c.RetentionBatch <= 0 {
		c.RetentionBatch = 5000
	}
	if c.RetentionPause == 0 {
		c.RetentionPause = 100 * time.Millisecond
	}
	if c.RedriveGrace == 0 {
		c.RedriveGrace = 30 * time.Second
	}
	if c.RedriveBatch <= 0 {
		c.RedriveBatch = 1000
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Scheduler owns the cron jobs.
type Scheduler struct {
	cfg   Config
	store *store.Store
	queue tasks.Enqueuer
	// producer queues the re-drive's pages in batches (nil without
	// Config.Redis).
	producer *enqueue.Producer
	logger   *slog.Logger
	jobs     []job

	// afterLock, when set (tests), runs once a job holds its lock, before
	// the job's work.
	afterLock func(job string)
	// hold is the least time a run keeps its lock (see lockHold): set by
	// Run, zero for runs called directly.
	hold atomic.Int64
}

// Several replicas wake for the same tick a few milliseconds apart. A run
// keeps its job's lock at least lockHold, so that a replica waking late for
// the same tick finds it held and skips, instead of running the tick again
// after a short run; it is shorter than the shortest interval (1 s).
const lockHold = 500 * time.Millisecond

// holdLock waits until the run that started at start has held its lock for
// the hold time.
func (s *Scheduler) holdLock(ctx context.Context, start time.Time) {
	rest := time.Duration(s.hold.Load()) - time.Since(start)
	if rest <= 0 {
		return
	}
	t := time.NewTimer(rest)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// alignedEvery is "@every" on the wall clock: ticks at multiples of the
// interval, so replicas started at different times share them (robfig/cron
// counts from each process's start, which gives every replica ticks of its
// own and the job a run per replica per interval).
type alignedEvery cron.ConstantDelaySchedule

func (e alignedEvery) Next(t time.Time) time.Time { return t.Truncate(e.Delay).Add(e.Delay) }

type job struct {
	name     string
	schedule cron.Schedule // nil: disabled
	run      func(context.Context)
}

var parser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// New checks the configuration and builds the scheduler; nothing runs until
// Run (or a Run* method) is called. queue is where the re-drive enqueues;
// an asynq.Client fits.
func New(st *store.Store, queue tasks.Enqueuer, cfg Config) (*Scheduler, error) {
	cfg.setDefaults()
	if cfg.Retention < 0 {
		return nil, fmt.Errorf("scheduler: retention %s must be positive", cfg.Retention)
	}
	if cfg.FailingAfter < 0 || cfg.AutoDisableAfter < 0 {
		return nil, fmt.Errorf("scheduler: lifecycle thresholds %s, %s must not be negative", cfg.FailingAfter, cfg.AutoDisableAfter)
	}
	if cfg.RedriveGrace < 0 {
		return nil, fmt.Errorf("scheduler: re-drive grace %s must not be negative", cfg.RedriveGrace)
	}
	s := &Scheduler{cfg: cfg, store: st, queue: queue, logger: cfg.Logger.With("component", "scheduler")}
	if cfg.Redis != nil && queue != nil {
		s.producer = enqueue.New(cfg.Redis, queue, cfg.TaskKeys)
	}
	specs := []struct {
		name, spec string
		run        func(context.Context)
	}{
		{JobRedrive, cfg.RedriveSchedule, func(ctx context.Context) { _, _ = s.RunRedrive(ctx) }},
		{JobRetention, cfg.RetentionSchedule, func(ctx context.Context) { _, _ = s.RunRetention(ctx) }},
		{JobSummary, cfg.SummarySchedule, func(ctx context.Context) { _, _ = s.RunSummary(ctx) }},
		{JobGauges, cfg.GaugesSchedule, func(ctx context.Context) { _, _ = s.RunGauges(ctx) }},
		{JobLifecycle, cfg.LifecycleSchedule, func(ctx context.Context) { _, _ = s.RunLifecycle(ctx) }},
	}
	var errs []error
	for _, sp := range specs {
		j := job{name: sp.name, run: sp.run}
		if sp.spec != Off {
			sched, err := parser.Parse(sp.spec)
			if err != nil {
				errs = append(errs, fmt.Errorf("scheduler: %s schedule %q: %w", sp.name, sp.spec, err))
			}
			if every, ok := sched.(cron.ConstantDelaySchedule); ok {
				sched = alignedEvery(every)
			}
			j.schedule = sched
		}
		s.jobs = append(s.jobs, j)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Run runs the jobs on their schedules until ctx ends, then waits for the
// runs in progress (which stop early, as they honour ctx) and returns. At
// start it also computes yesterday's summary if no replica has yet, so a
// scheduler that was down at midnight catches up.
func (s *Scheduler) Run(ctx context.Context) error {
	logger := cronLogger{s.logger}
	c := cron.New(
		cron.WithLocation(s.cfg.Location),
		cron.WithLogger(logger),
		// Recover outermost so that a panicking job is logged and the next
		// run still happens; a run that outlasts its interval makes the next
		// one a no-op instead of piling up.
		cron.WithChain(cron.Recover(logger), cron.SkipIfStillRunning(logger)),
	)
	var summary cron.EntryID
	var scheduled []any
	for _, j := range s.jobs {
		if j.schedule == nil {
			continue
		}
		id := c.Schedule(j.schedule, cron.FuncJob(func() { j.run(ctx) }))
		if j.name == JobSummary {
			summary = id
		}
		scheduled = append(scheduled, j.name)
	}
	s.hold.Store(int64(lockHold))
	c.Start()
	s.logger.Info("scheduler started", "jobs", scheduled, "redrive_schedule", s.cfg.RedriveSchedule,
		"retention_schedule", s.cfg.RetentionSchedule, "summary_schedule", s.cfg.SummarySchedule,
		"gauges_schedule", s.cfg.GaugesSchedule, "retention", s.cfg.Retention,
		"lifecycle_schedule", s.cfg.LifecycleSchedule, "failing_after", s.cfg.FailingAfter, "auto_disable_after", s.cfg.AutoDisableAfter)

	var wg sync.WaitGroup
	if summary != 0 {
		// Through the entry's wrapped job, so it cannot overlap a cron run.
		catchUp := c.Entry(summary).WrappedJob
		wg.Go(func() {
			if done, err := s.summaryDone(ctx); err != nil || !done {
				catchUp.Run()
			}
		})
	}
	wg.Go(func() { s.partitionsAtStart(ctx) })
	for _, j := range s.jobs {
		if j.name == JobGauges && j.schedule != nil {
			// Gauges from the start, not only after the first interval.
			wg.Go(func() { _, _ = s.RunGauges(ctx) })
		}
	}
	<-ctx.Done()
	<-c.Stop().Done()
	wg.Wait()
	s.logger.Info("scheduler stopped")
	return nil
}

// locked runs work under the job's advisory lock and logs, counts and times
// it. skipped reports that another session held the lock.
func (s *Scheduler) locked(ctx context.Context, name string, key int64, work func(context.Context) ([]any, error)) (skipped bool, took time.Duration, err error) {
	lock, err := s.store.TryJobLock(ctx, key)
	if errors.Is(err, store.ErrLocked) {
		metrics.JobRuns.WithLabelValues(name, "skipped").Inc()
		s.logger.Debug("scheduler job skipped: running on another instance", "job", name)
		return true, 0, nil
	}
	if err != nil {
		metrics.JobRuns.WithLabelValues(name, "error").Inc()
		s.logger.Error("scheduler job failed to start", "job", name, "err", err)
		return false, 0, fmt.Errorf("%s: %w", name, err)
	}
	defer lock.Release()
	if s.afterLock != nil {
		s.afterLock(name)
	}
	start := time.Now()
	defer s.holdLock(ctx, start)
	attrs, err := work(ctx)
	took = time.Since(start)
	metrics.JobDuration.WithLabelValues(name).Observe(took.Seconds())
	args := append([]any{"job", name, "duration", took}, attrs...)
	switch {
	case err != nil && ctx.Err() != nil:
		metrics.JobRuns.WithLabelValues(name, "error").Inc()
		s.logger.Warn("scheduler job interrupted by shutdown", append(args, "err", err)...)
		return false, took, fmt.Errorf("%s: %w", name, err)
	case err != nil:
		metrics.JobRuns.WithLabelValues(name, "error").Inc()
		s.logger.Error("scheduler job failed", append(args, "err", err)...)
		return false, took, fmt.Errorf("%s: %w", name, err)
	}
	metrics.JobRuns.WithLabelValues(name, "ok").Inc()
	metrics.JobLastSuccess.WithLabelValues(name).SetToCurrentTime()
	s.logger.Info("scheduler job finished", args...)
	return false, took, nil
}

// cronLogger adapts slog to cron's logger. Cron's own routine messages
// (wake, run, skip) go to debug; panics caught by cron.Recover to error.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}

// partitionsAtStart creates the partitions ahead as soon as the scheduler
// starts (a scheduler that was down may have let them run out), under the
// retention job's lock: the replica holding it is doing the same.
func (s *Scheduler) partitionsAtStart(ctx context.Context) {
	lock, err := s.store.TryJobLock(ctx, lockRetention)
	if err != nil {
		return
	}
	defer lock.Release()
	created, err := s.store.EnsurePartitions(ctx)
	if err != nil {
		s.logger.Error("partition: create partitions ahead at start", "err", err)
		return
	}
	for _, name := range created {
		metrics.PartitionsCreated.WithLabelValues(name[:strings.LastIndex(name, "_p")]).Inc()
	}
	if len(created) > 0 {
		s.logger.Info("partitions created ahead", "partitions", created)
	}
}
