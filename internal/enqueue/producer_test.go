package enqueue

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

type env struct {
	rdb       *redis.Client
	p         *Producer
	inspector *asynq.Inspector
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { rdb.Close() })
	client := asynq.NewClientFromRedisClient(rdb)
	return &env{rdb: rdb, p: New(rdb, client, nil), inspector: asynq.NewInspectorFromRedisClient(rdb)}
}

var receiver = uuid.MustParse("0b9c4a2e-aaaa-4bbb-8ccc-ddddeeeeffff")

func member(key, payload string) *tasks.Deliver {
	return &tasks.Deliver{ID: tasks.NotificationID(receiver, key), ReceiverID: receiver, EventType: "trade.paid",
		IdempotencyKey: key, Payload: json.RawMessage(payload), Attempt: 1}
}

func members(n int, prefix string) []*tasks.Deliver {
	out := make([]*tasks.Deliver, n)
	for i := range out {
		out[i] = member(fmt.Sprintf("%s-%d", prefix, i), `{"n":1}`)
	}
	return out
}

// pending lists the queue's pending tasks as (type, members).
func (e *env) pending(t *testing.T, queue string) map[string]int {
	t.Helper()
	infos, err := e.inspector.ListPendingTasks(queue, asynq.PageSize(1000))
	if err != nil && err != asynq.ErrQueueNotFound {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, info := range infos {
		n := 1
		if info.Type == tasks.TypeBatch {
			ms, err := tasks.DecodeBatch(info.Payload)
			if err != nil {
				t.Fatal(err)
			}
			n = len(ms)
		}
		out[info.ID] = n
	}
	return out
}

func statuses(res []Result) []Status {
	out := make([]Status, len(res))
	for i, r := range res {
		out[i] = r.Status
	}
	return out
}

// Members of one queue share one task; a repeat is AlreadyQueued, other
// content a Conflict naming the queued hash; duplicates within a call are
// queued once.
func TestEnqueueManyBatchesAndDedups(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	ds := members(5, "a")
	res, err := e.p.EnqueueMany(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != Queued {
			t.Fatalf("member %d: %v", i, r.Status)
		}
	}
	if got := e.pending(t, tasks.QueueFirst); len(got) != 1 {
		t.Fatalf("pending tasks %v, want one batch of 5", got)
	}
	again := members(5, "a")
	again[2].Payload = json.RawMessage(`{"n":2}`)
	again = append(again, member("a-new", `{}`), member("a-new", `{}`), member("a-new", `{"other":1}`))
	res, err = e.p.EnqueueMany(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{AlreadyQueued, AlreadyQueued, Conflict, AlreadyQueued, AlreadyQueued, Queued, AlreadyQueued, Conflict}
	if got := statuses(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if res[2].QueuedHash == "" || res[2].TypeDiffers {
		t.Errorf("conflict result %+v", res[2])
	}
	// The one new member went alone: an ordinary task under its own id.
	got := e.pending(t, tasks.QueueFirst)
	if len(got) != 2 || got[again[5].TaskID()] != 1 {
		t.Fatalf("pending %v", got)
	}
}

// A marker whose task is gone (a failed enqueue, a worker killed before it
// removed it) does not make a member look queued: it is taken over.
func TestStaleMarkerTakenOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.p.EnqueueMany(ctx, members(3, "s")); err != nil {
		t.Fatal(err)
	}
	for id := range e.pending(t, tasks.QueueFirst) {
		if err := e.inspector.DeleteTask(tasks.QueueFirst, id); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.p.EnqueueMany(ctx, members(3, "s"))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != Queued {
			t.Fatalf("member %d after its batch vanished: %v", i, r.Status)
		}
	}
	// Unmark removes a batch's markers, and only that batch's.
	keys, _ := e.rdb.Keys(ctx, "notifyd:*queued*").Result()
	if len(keys) != 3 {
		t.Fatalf("markers %v", keys)
	}
	if err := Unmark(ctx, e.rdb, "b:other", members(3, "s")); err != nil {
		t.Fatal(err)
	}
	if keys, _ = e.rdb.Keys(ctx, "notifyd:*queued*").Result(); len(keys) != 3 {
		t.Fatalf("another batch's Unmark removed markers: %v", keys)
	}
	for id := range e.pending(t, tasks.QueueFirst) {
		if err := Unmark(ctx, e.rdb, id, members(3, "s")); err != nil {
			t.Fatal(err)
		}
	}
	if keys, _ = e.rdb.Keys(ctx, "notifyd:*queued*").Result(); len(keys) != 0 {
		t.Fatalf("markers left after Unmark: %v", keys)
	}
}

// A member whose own task (a worker's deferral) is in Redis is compared
// with it, not batched again.
func TestOwnTaskCountsAsQueued(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	own := member("o-0", `{"n":1}`)
	if res, err := e.p.EnqueueMany(ctx, []*tasks.Deliver{own}); err != nil || res[0].Status != Queued {
		t.Fatal(res, err)
	}
	ds := members(3, "o")
	ds[0].Payload = json.RawMessage(`{"n": 1}`) // same JSON, other spacing
	res, err := e.p.EnqueueMany(ctx, ds)
	if err != nil {
		t.Fatal(err)
	}
	if got := statuses(res); fmt.Sprint(got) != fmt.Sprint([]Status{AlreadyQueued, Queued, Queued}) {
		t.Fatalf("statuses %v", got)
	}
	ds[0].Payload = json.RawMessage(`{"n":9}`)
	res, _ = e.p.EnqueueMany(ctx, ds[:1])
	if res[0].Status != Conflict {
		t.Fatalf("other content against own task: %v", res[0].Status)
	}
}

// Concurrent enqueues through a Linger share tasks; every caller gets its
// own result; a lone enqueue is an ordinary task of its own.
func TestLingerCombines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	l := NewLinger(func(ctx context.Context, ds []*tasks.Deliver) []Result {
		res, _ := e.p.Enqueue(ctx, ds)
		return res
	}, DefaultLinger, 0)
	defer l.Close()
	if r, err := l.Enqueue(t.Context(), member("lone", `{}`)); err != nil || r.Status != Queued {
		t.Fatal(r, err)
	}
	if got := e.pending(t, tasks.QueueFirst); got[member("lone", `{}`).TaskID()] != 1 {
		t.Fatalf("lone enqueue: %v", got)
	}
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			r, err := l.Enqueue(t.Context(), member(fmt.Sprintf("c-%d", i), `{}`))
			if err == nil && r.Status != Queued {
				err = fmt.Errorf("member %d: %v", i, r.Status)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := e.pending(t, tasks.QueueFirst)
	total := 0
	for _, m := range got {
		total += m
	}
	if total != n+1 {
		t.Fatalf("%d members queued, want %d", total, n+1)
	}
	if len(got) > n/4 {
		t.Errorf("%d concurrent enqueues made %d tasks: not combined", n, len(got))
	}
	t.Logf("%d enqueues in %d tasks", n+1, len(got))
}
