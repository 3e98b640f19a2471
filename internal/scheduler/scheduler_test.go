package scheduler

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/store"
)

func TestNewChecksSchedules(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
		enabled []string
	}{
		{name: "defaults", enabled: []string{JobRedrive, JobRetention, JobSummary, JobGauges, JobLifecycle}},
		{name: "seconds field and descriptors", cfg: Config{RedriveSchedule: "*/15 * * * * *", RetentionSchedule: "@hourly", SummarySchedule: "30 0 * * *",
			LifecycleSchedule: "@every 30s"},
			enabled: []string{JobRedrive, JobRetention, JobSummary, JobGauges, JobLifecycle}},
		{name: "off", cfg: Config{RetentionSchedule: Off, SummarySchedule: Off, GaugesSchedule: Off, LifecycleSchedule: Off}, enabled: []string{JobRedrive}},
		{name: "bad gauges schedule", cfg: Config{GaugesSchedule: "often"}, wantErr: `gauges schedule "often"`},
		{name: "negative lifecycle threshold", cfg: Config{AutoDisableAfter: -time.Hour}, wantErr: "must not be negative"},
		{name: "bad schedule", cfg: Config{RedriveSchedule: "every minute"}, wantErr: `redrive schedule "every minute"`},
		{name: "two bad schedules", cfg: Config{RetentionSchedule: "61 * * * *", SummarySchedule: "@weekly-ish"},
			wantErr: "retention schedule"},
		{name: "negative retention", cfg: Config{Retention: -time.Hour}, wantErr: "retention -1h0m0s must be positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(nil, nil, c.cfg)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var enabled []string
			for _, j := range s.jobs {
				if j.schedule != nil {
					enabled = append(enabled, j.name)
				}
			}
			if strings.Join(enabled, ",") != strings.Join(c.enabled, ",") {
				t.Fatalf("enabled %v, want %v", enabled, c.enabled)
			}
		})
	}
}

// Two replicas on one database: while one runs a job, the other skips it
// and does nothing; other jobs are not blocked.
func TestOneInstancePerJobAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	r := e.receiver()
	const n = 20
	for range n {
		e.notification(r, "next_attempt_at = "+ago(time.Hour))
	}
	a := e.replica(Config{})
	b := e.replica(Config{})

	locked, release := make(chan struct{}), make(chan struct{})
	a.afterLock = func(job string) {
		if job == JobRedrive {
			close(locked)
			<-release
		}
	}
	var resA RedriveResult
	var errA error
	var wg sync.WaitGroup
	wg.Go(func() { resA, errA = a.RunRedrive(ctx) })
	<-locked

	resB, err := b.RunRedrive(ctx)
	if err != nil || !resB.Skipped || resB.Scanned != 0 || resB.Enqueued != 0 {
		t.Fatalf("second replica while the first holds the lock: %+v %v", resB, err)
	}
	if got := e.queued(); got != 0 {
		t.Fatalf("the skipping replica enqueued %d tasks", got)
	}
	// The locks are per job.
	if ret, err := b.RunRetention(ctx); err != nil || ret.Skipped {
		t.Fatalf("retention on the second replica: %+v %v", ret, err)
	}

	close(release)
	wg.Wait()
	if errA != nil || resA.Skipped || resA.Enqueued != n {
		t.Fatalf("first replica: %+v %v", resA, errA)
	}
	// Released: the second replica runs now, and finds everything queued.
	resB, err = b.RunRedrive(ctx)
	if err != nil || resB.Skipped || resB.AlreadyQueued != n || resB.Enqueued != 0 {
		t.Fatalf("second replica after the first finished: %+v %v", resB, err)
	}
	if got := e.queued(); got != n {
		t.Fatalf("%d tasks queued, want %d", got, n)
	}
}

// Concurrent runs on several replicas, without any hook: however the runs
// interleave, every task is queued exactly once.
func TestConcurrentReplicasQueueOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.receiver()
	const n = 200
	for range n {
		e.notification(r, "next_attempt_at = "+ago(time.Hour))
	}
	var mu sync.Mutex
	var total RedriveResult
	var wg sync.WaitGroup
	for range 4 {
		s := e.replica(Config{RedriveBatch: 50})
		wg.Go(func() {
			res, err := s.RunRedrive(context.Background())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			total.Enqueued += res.Enqueued
		})
	}
	wg.Wait()
	if total.Enqueued != n {
		t.Fatalf("replicas enqueued %d in total, want %d", total.Enqueued, n)
	}
	if got := e.queued(); got != n {
		t.Fatalf("%d tasks queued, want %d", got, n)
	}
}

func TestRunSchedulesJobsAndStopsOnCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.receiver()
	lost := e.notification(r, "next_attempt_at = "+ago(time.Hour))
	// Yesterday's summary is missing: Run catches up at start.
	e.notification(r, "created_at = now() - interval '1 day'")

	s := e.scheduler(Config{RedriveSchedule: "@every 1s", RetentionSchedule: Off})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	deadline := time.Now().Add(15 * time.Second)
	for e.taskFor(lost) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the re-drive did not run on its schedule")
		}
		time.Sleep(50 * time.Millisecond)
	}
	now, err := e.store.Now(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for {
		rows, err := e.store.DailySummaries(context.Background(), now.UTC().AddDate(0, 0, -1))
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 1 && rows[0].Pending == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("yesterday's summary was not caught up: %+v", rows)
		}
		time.Sleep(50 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// Every lock was given back.
	for _, key := range []int64{lockRedrive, lockRetention, lockSummary} {
		l, err := e.store.TryJobLock(context.Background(), key)
		if err != nil {
			t.Fatalf("lock %d after Run: %v", key, err)
		}
		l.Release()
	}
}

func TestJobLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	other, err := store.Open(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	l, err := e.store.TryJobLock(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.TryJobLock(ctx, 42); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second session: %v, want ErrLocked", err)
	}
	if l2, err := other.TryJobLock(ctx, 43); err != nil {
		t.Fatalf("another key: %v", err)
	} else {
		l2.Release()
	}
	l.Release()
	l, err = other.TryJobLock(ctx, 42)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	l.Release()
}
