package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

// schedule queues n's next attempt the way ingest and the worker do.
func (e *env) schedule(n *store.Notification) {
	e.t.Helper()
	d := tasks.Deliver{ID: n.ID, ReceiverID: n.ReceiverID, EventType: n.EventType, IdempotencyKey: n.IdempotencyKey, Payload: n.Payload}
	if err := tasks.Schedule(context.Background(), e.queue, nil, d, n.Attempts+1, *n.NextAttemptAt); err != nil {
		e.t.Fatal(err)
	}
}

func TestRedriveAfterFlush(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	r := e.receiver()
	overdue := "next_attempt_at = " + ago(5*time.Minute)

	type outcome int
	const (
		enqueued outcome = iota
		alreadyQueued
		finalized
		untouched
	)
	cases := []struct {
		name string
		set  string
		// queued: its task is in Redis (enqueued after the flush).
		queued bool
		// lost: its task was in Redis before the flush.
		lost bool
		want outcome
	}{
		{name: "first attempt lost in the flush", set: overdue, lost: true, want: enqueued},
		{name: "first attempt lost in the flush 2", set: overdue, lost: true, want: enqueued},
		{name: "first attempt lost in the flush 3", set: overdue, lost: true, want: enqueued},
		{name: "retry never enqueued", set: overdue + ", attempts = 1", want: enqueued},
		{name: "last retry never enqueued", set: overdue + ", attempts = 2", want: enqueued},
		{name: "task in Redis", set: overdue, queued: true, want: alreadyQueued},
		{name: "retry task in Redis", set: overdue + ", attempts = 1", queued: true, want: alreadyQueued},
		{name: "attempts exhausted but pending", set: overdue + ", attempts = 3", want: finalized},
		{name: "due within the grace", set: "next_attempt_at = " + ago(10*time.Second), want: untouched},
		{name: "due in the future", set: "next_attempt_at = now() + interval '1 hour', attempts = 1", want: untouched},
		{name: "delivered", set: "status = 'delivered', next_attempt_at = NULL, attempts = 1", want: untouched},
		{name: "failed", set: "status = 'failed', next_attempt_at = NULL, attempts = 3", want: untouched},
	}
	ns := make([]*store.Notification, len(cases))
	for i, c := range cases {
		ns[i] = e.notification(r, c.set)
		if c.lost {
			e.schedule(ns[i])
		}
	}
	if got := e.queued(); got != 3 {
		t.Fatalf("before the flush: %d tasks queued, want 3", got)
	}
	// Redis loses everything. The test's own DB index is its whole world.
	if err := e.rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		if c.queued {
			e.schedule(ns[i])
		}
	}

	// A batch smaller than the backlog exercises the keyset paging.
	s := e.scheduler(Config{RedriveBatch: 2})
	res, err := s.RunRedrive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := RedriveResult{Scanned: 8, Enqueued: 5, AlreadyQueued: 2, Finalized: 1}
	if res.Scanned != want.Scanned || res.Enqueued != want.Enqueued || res.AlreadyQueued != want.AlreadyQueued ||
		res.Finalized != want.Finalized || res.Skipped {
		t.Fatalf("first run: %+v, want %+v", res, want)
	}
	for i, c := range cases {
		n := e.status(ns[i])
		task := e.taskFor(n)
		switch c.want {
		case enqueued, alreadyQueued:
			if task == nil {
				t.Errorf("%s: no task for attempt %d", c.name, n.Attempts+1)
				continue
			}
			if task.ID != n.ID || task.Attempt != n.Attempts+1 {
				t.Errorf("%s: task %+v is not attempt %d of %s", c.name, task, n.Attempts+1, n.ID)
			}
			// A re-driven task is built from the stored row.
			if c.want == enqueued && (task.ReceiverID != r.ID || task.EventType != "trade.paid" ||
				task.CallbackURL != "https://example.com/override" || string(task.Payload) != `{"amount":1}` ||
				task.IdempotencyKey != n.IdempotencyKey || !task.EnqueuedAt.Equal(n.CreatedAt)) {
				t.Errorf("%s: task %+v does not carry the stored notification %+v", c.name, task, n)
			}
		case finalized:
			if n.Status != store.StatusFailed || n.NextAttemptAt != nil || n.LastError == nil || *n.LastError != exhaustedReason {
				t.Errorf("%s: not finalized: %+v", c.name, n)
			}
			if task != nil {
				t.Errorf("%s: got a task", c.name)
			}
		case untouched:
			if task != nil {
				t.Errorf("%s: got a task", c.name)
			}
			if n.Status != ns[i].Status {
				t.Errorf("%s: status changed to %s", c.name, n.Status)
			}
		}
	}
	if got := e.queued(); got != 7 {
		t.Fatalf("after the re-drive: %d tasks queued, want exactly one per pending overdue notification (7)", got)
	}

	// Again: everything is queued now, nothing is added.
	res, err = s.RunRedrive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Scanned != 7 || res.Enqueued != 0 || res.AlreadyQueued != 7 || res.Finalized != 0 {
		t.Fatalf("second run: %+v, want 7 scanned, all already queued", res)
	}
	if got := e.queued(); got != 7 {
		t.Fatalf("after the second re-drive: %d tasks queued, want 7 (no duplicates)", got)
	}
}

func TestRedriveHonoursContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.receiver()
	for range 5 {
		e.notification(r, "next_attempt_at = "+ago(time.Hour))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := e.scheduler(Config{RedriveBatch: 1})
	// Shutdown arrives once the job holds its lock.
	s.afterLock = func(string) { cancel() }
	res, err := s.RunRedrive(ctx)
	if err == nil {
		t.Fatalf("cancelled run succeeded: %+v", res)
	}
	if e.queued() != 0 {
		t.Fatal("a cancelled run enqueued tasks")
	}
	// The lock was released despite the cancelled context.
	s.afterLock = nil
	res, err = s.RunRedrive(context.Background())
	if err != nil || res.Skipped || res.Enqueued != 5 {
		t.Fatalf("run after the cancelled one: %+v %v", res, err)
	}
}

// TestRedriveQueuesPagesInBatches: a page of overdue notifications goes to
// Redis in batch tasks, and a second run finds every one of them already
// queued (the batch members' markers), adding nothing.
func TestRedriveQueuesPagesInBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	r := e.receiver()
	for i := range 60 {
		attempts := i % 2 // first attempts and retries: two queues
		e.notification(r, "next_attempt_at = "+ago(5*time.Minute)+", attempts = $2", attempts)
	}
	s := e.scheduler(Config{RedriveBatch: 1000})
	res, err := s.RunRedrive(ctx)
	if err != nil || res.Scanned != 60 || res.Enqueued != 60 || res.AlreadyQueued != 0 {
		t.Fatalf("first run: %+v, %v; want 60 enqueued", res, err)
	}
	tasksInRedis := 0
	for _, q := range []string{tasks.QueueFirst, tasks.QueueRetry} {
		info, err := e.inspect.GetQueueInfo(q)
		if err != nil {
			t.Fatal(err)
		}
		tasksInRedis += info.Size
	}
	if got := e.queued(); got != 60 || tasksInRedis != 2 {
		t.Fatalf("%d attempts queued in %d tasks, want 60 in 2 batch tasks (one per queue)", got, tasksInRedis)
	}
	res, err = s.RunRedrive(ctx)
	if err != nil || res.Enqueued != 0 || res.AlreadyQueued != 60 {
		t.Fatalf("second run: %+v, %v; want all 60 already queued", res, err)
	}
	if got := e.queued(); got != 60 {
		t.Fatalf("after the second run: %d attempts queued, want still 60", got)
	}
}

// TestRedriveWithoutRedisQueuesOneByOne: a scheduler built without
// Config.Redis queues each notification as its own task at its due time,
// and counts a task already there as already queued.
func TestRedriveWithoutRedisQueuesOneByOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.receiver()
	var ns []*store.Notification
	for range 3 {
		ns = append(ns, e.notification(r, "next_attempt_at = "+ago(5*time.Minute)))
	}
	e.schedule(ns[0])
	s, err := New(e.store, e.queue, Config{Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.RunRedrive(context.Background())
	if err != nil || res.Enqueued != 2 || res.AlreadyQueued != 1 {
		t.Fatalf("run: %+v, %v; want 2 enqueued, 1 already queued", res, err)
	}
	for _, n := range ns {
		own := &tasks.Deliver{ID: n.ID, Attempt: 1}
		if info, err := e.inspect.GetTaskInfo(own.Queue(), own.TaskID()); err != nil || info.Type != tasks.TypeDeliver {
			t.Errorf("no task of its own for %s: %v", n.ID, err)
		}
	}
	if got := e.queued(); got != 3 {
		t.Errorf("%d tasks queued, want 3", got)
	}
}
