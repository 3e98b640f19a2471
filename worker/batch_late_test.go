package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/worker"
)

// Members that outlive their batch's patience (a second) and how they are
// settled: batch.go's settleLate.

// request is one request a receiver saw: its attempt, when it came and
// when it was answered.
type request struct {
	attempt    int
	start, end time.Time
}

// A member that outlives its batch and then fails (the receiver answers
// 500 late) is settled like any attempt: recorded once, its retry queued as
// its own task at its own schedule by the member itself. Its guard, which
// would find the attempt on record, is deleted. The batch is not run again.
func TestBatchLateMemberFailureRetriesOnItsSchedule(t *testing.T) {
	t.Parallel()
	const hold = 1300 * time.Millisecond // past the batch's patience (1 s)
	s, receivers, _, c := batchStack(t, 1, 0, func(int) int { return http.StatusOK })
	var mu sync.Mutex
	seen := map[string][]request{} // notification id → requests, in order
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := request{start: time.Now()}
		req.attempt, _ = strconv.Atoi(r.Header.Get("Notifyd-Attempt"))
		var body struct{ ID string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		code := http.StatusOK
		if req.attempt == 1 {
			time.Sleep(hold)
			code = http.StatusInternalServerError
		}
		req.end = time.Now()
		mu.Lock()
		seen[body.ID] = append(seen[body.ID], req)
		mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(slow.Close)
	requestsOf := func(id string) []request {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen[id])
	}
	receivers = append(receivers, s.CreateReceiver(slow.URL, nil).ID)
	insp := asynq.NewInspectorFromRedisClient(s.Redis)
	ids := notifyMany(t, c, receivers, 4, "late500-") // 0 and 2 fast, 1 and 3 slow
	waitDelivered(t, s.Store, 15*time.Second, ids...)

	attempts := attemptsOf(t, s.Store, ids)
	for i, id := range ids {
		want := "[1]"
		if i%2 == 1 {
			want = "[1 2]"
		}
		if got := fmt.Sprint(attempts[id]); got != want {
			t.Errorf("notification %d: attempts %s, want %s", i, got, want)
		}
	}
	for _, i := range []int{1, 3} {
		id := ids[i]
		reqs := requestsOf(id)
		if len(reqs) != 2 || reqs[0].attempt != 1 || reqs[1].attempt != 2 {
			t.Errorf("notification %d: receiver saw attempts %v, want 1 then 2, once each", i, attemptNos(reqs))
			continue
		}
		// The retry policy's delay (1 s) after the late answer, not at once.
		if gap := reqs[1].start.Sub(reqs[0].end); gap < notifydtest.FastRetry().Base-50*time.Millisecond {
			t.Errorf("notification %d: retry %s after the late 500, want its schedule (%s)", i, gap, notifydtest.FastRetry().Base)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "nothing left queued: the settled members' guards deleted", func() bool {
		return queuesEmpty(insp)
	})
	for _, i := range []int{1, 3} {
		if n := len(requestsOf(ids[i])); n != 2 {
			t.Errorf("notification %d: %d requests, want 2", i, n)
		}
	}
}

// A member still running when its worker stops (SIGTERM) is cut short,
// which records nothing, and its guard is run before the worker returns:
// the next worker makes the attempt at once, not at the guard's time
// (guardAfter, a minute). The members that finished are not sent again.
func TestBatchLateMemberCutShortAtShutdownRunsItsGuard(t *testing.T) {
	t.Parallel()
	const shutdownTimeout = 2 * time.Second
	st, rdb := openStores(t)
	var fastHits, slowHits atomic.Int64
	fast := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { fastHits.Add(1) }))
	t.Cleanup(fast.Close)
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if slowHits.Add(1) <= 2 {
			// The first worker's two requests hang until cut short (the
			// server sees the client go only once the body is read).
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
		}
	}))
	t.Cleanup(slow.Close)
	receivers := []uuid.UUID{createReceiver(t, st, fast.URL), createReceiver(t, st, slow.URL)}
	members := make([]*tasks.Deliver, 4) // 0 and 2 fast, 1 and 3 hang
	ids := make([]string, len(members))
	for i := range members {
		rcv, key := receivers[i%2], "cut-"+strconv.Itoa(i)
		members[i] = &tasks.Deliver{ID: tasks.NotificationID(rcv, key), ReceiverID: rcv, EventType: "trade.paid",
			IdempotencyKey: key, Payload: json.RawMessage(`{}`), Attempt: 1, EnqueuedAt: time.Now()}
		ids[i] = members[i].ID.String()
	}
	if _, err := enqueue.New(rdb, asynq.NewClientFromRedisClient(rdb), nil).EnqueueMany(t.Context(), members); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	guardState := func(i int) asynq.TaskState {
		info, err := insp.GetTaskInfo(tasks.QueueFirst, members[i].TaskID())
		if err != nil {
			return 0
		}
		return info.State
	}

	stop := runWorker(t, st, rdb, shutdownTimeout)
	waitDelivered(t, st, 10*time.Second, ids[0], ids[2])
	testenv.WaitFor(t, 10*time.Second, "the batch completed, its hanging members guarded", func() bool {
		active, _ := insp.ListActiveTasks(tasks.QueueFirst)
		return len(active) == 0 && slowHits.Load() == 2 &&
			guardState(1) == asynq.TaskStateScheduled && guardState(3) == asynq.TaskStateScheduled
	})
	if took := stop(); took > shutdownTimeout+5*time.Second {
		t.Errorf("worker took %s to stop, bound %s (shutdown timeout) + 5 s (finish)", took, shutdownTimeout)
	}
	for _, i := range []int{1, 3} {
		if s := guardState(i); s != asynq.TaskStatePending {
			t.Errorf("member %d cut short: its guard is %v once the worker stopped, want pending (run at once)", i, s)
		}
	}
	if got := fmt.Sprint(attemptsOf(t, st, ids)); got != fmt.Sprint(map[string][]int{ids[0]: {1}, ids[2]: {1}}) {
		t.Errorf("attempts on record after the shutdown: %s; a cut-short attempt records nothing", got)
	}

	runWorker(t, st, rdb, shutdownTimeout) // stopped when the test ends
	waitDelivered(t, st, 10*time.Second, ids...)
	testenv.WaitFor(t, 10*time.Second, "nothing left queued", func() bool { return queuesEmpty(insp) })
	for id, as := range attemptsOf(t, st, ids) {
		if fmt.Sprint(as) != "[1]" {
			t.Errorf("%s: attempts %v, want [1]", id, as)
		}
	}
	if n := fastHits.Load(); n != 2 {
		t.Errorf("fast receiver got %d requests for 2 notifications delivered before the shutdown", n)
	}
	if n := slowHits.Load(); n != 4 {
		t.Errorf("hanging receiver got %d requests, want 4 (2 cut short, 2 made again)", n)
	}
}

// A member still running when its worker stops gets what is left of the
// shutdown timeout, like any delivery in flight: a receiver that answers
// within it has its attempt recorded, and its guard is deleted, so nothing
// sends it again.
func TestBatchLateMemberFinishesWithinTheShutdownTimeout(t *testing.T) {
	t.Parallel()
	const hold = 2500 * time.Millisecond // past the batch's patience (1 s), within the shutdown timeout
	st, rdb := openStores(t)
	var hits atomic.Int64
	started := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		if hits.Add(1) == 1 {
			started <- struct{}{}
		}
		time.Sleep(hold)
	}))
	t.Cleanup(slow.Close)
	fast := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(fast.Close)
	var members []*tasks.Deliver // a batch: the fast member, then the slow one
	for _, url := range []string{fast.URL, slow.URL} {
		rcv := createReceiver(t, st, url)
		members = append(members, &tasks.Deliver{ID: tasks.NotificationID(rcv, "late-ok"), ReceiverID: rcv, EventType: "trade.paid",
			IdempotencyKey: "late-ok", Payload: json.RawMessage(`{}`), Attempt: 1, EnqueuedAt: time.Now()})
	}
	m := members[1]
	if _, err := enqueue.New(rdb, asynq.NewClientFromRedisClient(rdb), nil).EnqueueMany(t.Context(), members); err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, st, rdb, 10*time.Second)
	<-started
	time.Sleep(1200 * time.Millisecond) // the member has outlived its batch
	if took := stop(); took > hold+2*time.Second {
		t.Errorf("worker took %s to stop; the member needed %s", took, hold)
	}
	id := m.ID.String()
	if got := fmt.Sprint(attemptsOf(t, st, []string{id})); got != fmt.Sprint(map[string][]int{id: {1}}) {
		t.Fatalf("attempts on record once the worker stopped: %s, want the late member's attempt 1", got)
	}
	waitDelivered(t, st, time.Second, id)
	if insp := asynq.NewInspectorFromRedisClient(rdb); !queuesEmpty(insp) {
		t.Error("tasks left queued once the worker stopped; the settled member's guard should be deleted")
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

func attemptNos(reqs []request) []int {
	out := make([]int, len(reqs))
	for i, r := range reqs {
		out[i] = r.attempt
	}
	return out
}

// queuesEmpty reports whether no task of any delivery queue is left in
// Redis (pending, scheduled, active or to retry).
func queuesEmpty(insp *asynq.Inspector) bool {
	for q := range tasks.QueueWeights {
		info, err := insp.GetQueueInfo(q)
		if err == nil && info.Size > 0 {
			return false
		}
	}
	return true
}

// openStores opens the test's own Postgres database and Redis index.
func openStores(t *testing.T) (*store.Store, *redis.Client) {
	t.Helper()
	st, err := store.Open(t.Context(), testenv.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { rdb.Close() })
	return st, rdb
}

func createReceiver(t *testing.T, st *store.Store, url string) uuid.UUID {
	t.Helper()
	secret, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	r := &store.Receiver{ID: uuid.New(), Name: "merchant", CallbackURL: url, SigningSecret: secret}
	if err := st.CreateReceiver(t.Context(), r, store.HashAPIKey(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	return r.ID
}

// runWorker runs a worker as notifydtest's, on st and rdb, until stop (or
// the test's end); stop returns how long the worker took to stop.
func runWorker(t *testing.T, st *store.Store, rdb *redis.Client, shutdownTimeout time.Duration) (stop func() time.Duration) {
	t.Helper()
	w := worker.New(st, rdb, worker.Config{
		Concurrency: 10, Retry: notifydtest.FastRetry(), Targets: netguard.Policy{AllowPrivate: true},
		ShutdownTimeout: shutdownTimeout, Breaker: worker.BreakerConfig{Failures: -1},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	stop = sync.OnceValue(func() time.Duration {
		start := time.Now()
		cancel()
		<-done
		return time.Since(start)
	})
	t.Cleanup(func() { stop() })
	return stop
}
