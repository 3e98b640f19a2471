package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/notifier"
	"github.com/notifyd/notifyd/worker"
)

// gauge counts requests in flight, overall and per receiver, and keeps the
// highest counts seen.
type gauge struct {
	mu       sync.Mutex
	now, max map[string]int
}

func (g *gauge) enter(who string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now[who]++
	g.now[""]++
	g.max[who] = max(g.max[who], g.now[who])
	g.max[""] = max(g.max[""], g.now[""])
}

func (g *gauge) leave(who string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now[who]--
	g.now[""]--
}

// batchStack is a notifyd, n receivers answering with answer after hold,
// and a Go client without linger (NotifyMany makes the batches).
func batchStack(t *testing.T, n int, hold time.Duration, answer func(attempt int) int, opts ...notifydtest.Option) (*notifydtest.Stack, []string, *gauge, *notifier.Client) {
	t.Helper()
	s := notifydtest.Start(t, opts...)
	g := &gauge{now: map[string]int{}, max: map[string]int{}}
	ids := make([]string, n)
	for i := range ids {
		who := strconv.Itoa(i)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.enter(who)
			defer g.leave(who)
			time.Sleep(hold)
			attempt, _ := strconv.Atoi(r.Header.Get("Notifyd-Attempt"))
			w.WriteHeader(answer(attempt))
		}))
		t.Cleanup(srv.Close)
		ids[i] = s.CreateReceiver(srv.URL, nil).ID
	}
	c := notifier.NewFromRedisClient(s.Redis, notifier.WithAllowPrivateTargets(true), notifier.WithLinger(0))
	t.Cleanup(func() { c.Close() })
	return s, ids, g, c
}

func notifyMany(t *testing.T, c *notifier.Client, receivers []string, n int, prefix string) []string {
	t.Helper()
	ns := make([]notifier.Notification, n)
	for i := range ns {
		ns[i] = notifier.Notification{ReceiverID: receivers[i%len(receivers)], EventType: "trade.paid",
			IdempotencyKey: prefix + strconv.Itoa(i), Payload: json.RawMessage(`{"i":` + strconv.Itoa(i) + `}`)}
	}
	res, err := c.NotifyMany(t.Context(), ns)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i, r := range res {
		ids[i] = r.ID
	}
	return ids
}

// waitDelivered waits until every notification is on record as delivered
// (a Go client's notification is recorded by its first attempt).
func waitDelivered(t *testing.T, st *store.Store, timeout time.Duration, ids ...string) {
	t.Helper()
	uids := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		uids[i] = uuid.MustParse(id)
	}
	testenv.WaitFor(t, timeout, "every notification delivered", func() bool {
		states, err := st.DeliveryStates(context.Background(), uids)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range uids {
			if states[id].Status != store.StatusDelivered {
				return false
			}
		}
		return true
	})
}

// attemptsOf returns each notification's recorded attempt numbers.
func attemptsOf(t *testing.T, st *store.Store, ids []string) map[string][]int {
	t.Helper()
	out := map[string][]int{}
	for _, id := range ids {
		as, err := st.ListAttempts(context.Background(), uuid.MustParse(id))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			out[id] = append(out[id], a.AttemptNo)
		}
	}
	return out
}

// A batch's members are delivered under the worker-wide limit (it counts
// deliveries, not tasks) and each receiver's cap.
func TestBatchFanOutRespectsLimits(t *testing.T) {
	t.Parallel()
	const concurrency, perReceiver = 6, 2
	s, receivers, g, c := batchStack(t, 4, 40*time.Millisecond, func(int) int { return 200 },
		notifydtest.WithWorker(func(w *worker.Config) { w.Concurrency, w.ReceiverConcurrency = concurrency, perReceiver }))
	ids := notifyMany(t, c, receivers, 80, "limit-")
	waitDelivered(t, s.Store, 60*time.Second, ids...)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.max[""] > concurrency {
		t.Errorf("%d deliveries at once, worker limit %d", g.max[""], concurrency)
	}
	for who, m := range g.max {
		if who != "" && m > perReceiver {
			t.Errorf("receiver %s: %d at once, cap %d", who, m, perReceiver)
		}
	}
	if g.max[""] < 2 {
		t.Errorf("at most %d delivery at once: the batch was not fanned out", g.max[""])
	}
	for id, as := range attemptsOf(t, s.Store, ids) {
		if len(as) != 1 || as[0] != 1 {
			t.Errorf("%s: attempts %v", id, as)
		}
	}
}

// A member's retry is its own task, at its own time, under its own id.
func TestBatchMemberRetryIsOwnTask(t *testing.T) {
	t.Parallel()
	s, receivers, _, c := batchStack(t, 2, 0, func(attempt int) int {
		if attempt == 1 {
			return 503
		}
		return 200
	})
	insp := asynq.NewInspectorFromRedisClient(s.Redis)
	// The retries wait in their paused queue until all are seen: on a
	// loaded machine a retry can be due by the time its attempt is on
	// record, and run between two looks.
	if err := insp.PauseQueue(tasks.QueueRetry); err != nil {
		t.Fatal(err)
	}
	ids := notifyMany(t, c, receivers, 6, "retry-")
	want := map[string]bool{}
	for _, id := range ids {
		want[id+":2"] = true
	}
	testenv.WaitFor(t, 20*time.Second, "retries queued as their own tasks", func() bool {
		scheduled, _ := insp.ListScheduledTasks(tasks.QueueRetry)
		pending, _ := insp.ListPendingTasks(tasks.QueueRetry)
		seen := 0
		for _, info := range append(scheduled, pending...) {
			if info.Type == tasks.TypeDeliver && want[info.ID] {
				seen++
			}
		}
		return seen == len(ids)
	})
	if err := insp.UnpauseQueue(tasks.QueueRetry); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, s.Store, 30*time.Second, ids...)
	for id, as := range attemptsOf(t, s.Store, ids) {
		if fmt.Sprint(as) != "[1 2]" {
			t.Errorf("%s: attempts %v, want [1 2]", id, as)
		}
	}
}

// Members held back by a busy receiver are handed on as their own tasks
// without using an attempt, and delivered once.
func TestBatchMemberDeferralUsesNoAttempt(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	s, receivers, g, c := batchStack(t, 1, 150*time.Millisecond, func(int) int { hits.Add(1); return 200 },
		notifydtest.WithWorker(func(w *worker.Config) { w.Concurrency, w.ReceiverConcurrency = 20, 1 }))
	ids := notifyMany(t, c, receivers, 12, "busy-")
	waitDelivered(t, s.Store, 60*time.Second, ids...)
	for id, as := range attemptsOf(t, s.Store, ids) {
		if fmt.Sprint(as) != "[1]" {
			t.Errorf("%s: attempts %v, want [1]", id, as)
		}
	}
	if g.max["0"] > 1 {
		t.Errorf("%d requests at once to a receiver capped at 1", g.max["0"])
	}
	if hits.Load() != int64(len(ids)) {
		t.Errorf("receiver got %d requests for %d notifications", hits.Load(), len(ids))
	}
}

// A batch member whose id is not derived from its receiver and key is
// refused; the batch's other members are delivered.
func TestBatchForgedMemberRefused(t *testing.T) {
	t.Parallel()
	s, receivers, _, _ := batchStack(t, 1, 0, func(int) int { return 200 })
	rcv := uuid.MustParse(receivers[0])
	good := &tasks.Deliver{ID: tasks.NotificationID(rcv, "good"), ReceiverID: rcv, EventType: "t", IdempotencyKey: "good",
		Payload: json.RawMessage(`{}`), Attempt: 1, EnqueuedAt: time.Now()}
	forged := *good
	forged.IdempotencyKey, forged.ID = "forged", uuid.New()
	p := enqueue.New(s.Redis, asynq.NewClientFromRedisClient(s.Redis), nil)
	if _, err := p.EnqueueMany(t.Context(), []*tasks.Deliver{good, &forged}); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, s.Store, 20*time.Second, good.ID.String())
	if _, err := s.Store.GetNotification(t.Context(), forged.ID); err == nil {
		t.Error("the forged member was recorded")
	}
}

// A member whose receiver hangs does not hold its batch: the batch
// completes after the worker's patience with that member guarded by its
// own task, deleted once the member's attempt is on record.
func TestBatchSlowMemberIsGuardedNotWaitedFor(t *testing.T) {
	t.Parallel()
	s, receivers, _, c := batchStack(t, 1, 0, func(int) int { return 200 })
	var slowHits atomic.Int64
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		<-release
	}))
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(slow.Close)
	t.Cleanup(releaseAll)
	receivers = append(receivers, s.CreateReceiver(slow.URL, nil).ID)
	insp := asynq.NewInspectorFromRedisClient(s.Redis)
	ids := notifyMany(t, c, receivers, 4, "slow-") // 0 and 2 fast, 1 and 3 hang
	waitDelivered(t, s.Store, 20*time.Second, ids[0], ids[2])
	testenv.WaitFor(t, 10*time.Second, "the batch completed and the hanging members guarded", func() bool {
		active, _ := insp.ListActiveTasks(tasks.QueueFirst)
		scheduled, _ := insp.ListScheduledTasks(tasks.QueueFirst)
		guarded := 0
		for _, info := range scheduled {
			if info.ID == ids[1]+":1" || info.ID == ids[3]+":1" {
				guarded++
			}
		}
		return len(active) == 0 && guarded == 2
	})
	releaseAll()
	waitDelivered(t, s.Store, 20*time.Second, ids[1], ids[3])
	testenv.WaitFor(t, 10*time.Second, "the settled members' guards deleted", func() bool {
		q, err := insp.GetQueueInfo(tasks.QueueFirst)
		return err == nil && q.Size == 0
	})
	if n := slowHits.Load(); n != 2 {
		t.Errorf("hanging receiver got %d requests for 2 notifications", n)
	}
	for id, as := range attemptsOf(t, s.Store, ids) {
		if fmt.Sprint(as) != "[1]" {
			t.Errorf("%s: attempts %v, want [1]", id, as)
		}
	}
}
