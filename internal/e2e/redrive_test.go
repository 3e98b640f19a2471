package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/scheduler"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/worker"
)

// newRedrive builds a scheduler on the stack, as `notifyd scheduler` does.
func (s *stack) newRedrive(grace time.Duration) *scheduler.Scheduler {
	s.t.Helper()
	sched, err := scheduler.New(s.store, asynq.NewClientFromRedisClient(s.rdb), scheduler.Config{RedriveGrace: grace, Logger: schedulerLogger(s.t), Redis: s.rdb})
	if err != nil {
		s.t.Fatal(err)
	}
	return sched
}

// schedulerLogger shows the jobs' log lines in the test log with -v.
func schedulerLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (s *stack) redrive(sched *scheduler.Scheduler) scheduler.RedriveResult {
	s.t.Helper()
	res, err := sched.RunRedrive(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return res
}

// flushRedis empties the stack's Redis database, as a Redis restarted
// without persistence would be. Only the test's own DB index: other tests
// share the server.
func (s *stack) flushRedis() {
	s.t.Helper()
	if err := s.rdb.FlushDB(context.Background()).Err(); err != nil {
		s.t.Fatal(err)
	}
}

// countStatus counts the notifications among ids with status.
func (s *stack) countStatus(ids []string, status string) int {
	s.t.Helper()
	n := 0
	for _, id := range ids {
		got, err := s.store.GetNotification(context.Background(), uuid.MustParse(id))
		if err != nil {
			s.t.Fatal(err)
		}
		if got.Status == status {
			n++
		}
	}
	return n
}

func (s *stack) waitCount(ids []string, status string, want int, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.countStatus(ids, status)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d notifications %s after %s, want %d", got, len(ids), status, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSteady waits until rs has received some requests and no more for
// half a second, and returns how many.
func waitSteady(t *testing.T, rs *receiverServer, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last, since := 0, time.Now()
	for {
		n := len(rs.Hits())
		if n != last {
			last, since = n, time.Now()
		}
		if n > 0 && time.Since(since) >= 500*time.Millisecond {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver requests did not settle within %s (%d so far)", timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Redis loses every task while the receiver is slow: some attempts are in
// flight, the rest are still queued. The in-flight ones finish and are
// recorded; the re-drive leaves them alone (grace) and queues the lost ones
// again; every notification is delivered exactly once.
func TestRedriveAfterRedisLosesQueuedAndRunningTasks(t *testing.T) {
	t.Parallel()
	// Two workers, both held by the receiver (a new receiver's slow-start
	// window is 2 as well): the other notifications stay queued in Redis
	// rather than cycling through deferrals in a free worker's hands.
	s := newStack(t, withWorker(func(w *worker.Config) { w.Concurrency = 2 }))
	release := make(chan struct{})
	rs := newReceiverServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	})
	r := s.receiver(rs.URL, nil)
	const total = 30
	ids := make([]string, total)
	for i := range ids {
		ids[i] = s.send(r.ID, fmt.Sprintf("order-%d", i), map[string]any{"n": i})
	}
	// Every worker is taken by a request the receiver holds; the rest are
	// queued.
	inFlight := waitSteady(t, rs, 10*time.Second)
	if inFlight >= total {
		t.Fatalf("all %d notifications in flight; the test needs some queued", inFlight)
	}
	s.flushRedis()

	// Within the grace nothing is touched: the running attempts must not
	// be doubled.
	if res := s.redrive(s.newRedrive(30 * time.Second)); res.Scanned != 0 || res.Enqueued != 0 {
		t.Fatalf("re-drive within the grace: %+v", res)
	}
	close(release)
	s.waitCount(ids, store.StatusDelivered, inFlight, 10*time.Second)
	// The queued ones are gone with Redis: nothing delivers them.
	time.Sleep(500 * time.Millisecond)
	if got := len(rs.Hits()); got != inFlight {
		t.Fatalf("receiver got %d requests with Redis flushed, want %d", got, inFlight)
	}
	if got := s.countStatus(ids, store.StatusPending); got != total-inFlight {
		t.Fatalf("%d pending, want %d", got, total-inFlight)
	}

	sched := s.newRedrive(time.Millisecond)
	if res := s.redrive(sched); res.Scanned != total-inFlight || res.Enqueued != total-inFlight {
		t.Fatalf("re-drive: %+v, want %d enqueued", res, total-inFlight)
	}
	s.waitCount(ids, store.StatusDelivered, total, 10*time.Second)
	per := hitsByID(t, rs)
	for _, id := range ids {
		if per[id] != 1 {
			t.Errorf("%s: receiver got %d requests, want 1", id, per[id])
		}
		if as := s.attempts(id); len(as) != 1 || as[0].Outcome != store.OutcomeSuccess {
			t.Errorf("%s: attempts %+v", id, as)
		}
	}
	if res := s.redrive(sched); res.Scanned != 0 {
		t.Fatalf("re-drive after delivery: %+v", res)
	}
}

// Redis loses the scheduled retries: the first attempt failed, its retry
// task is gone. The re-drive queues attempt 2, which delivers.
func TestRedriveAfterRedisLosesRetries(t *testing.T) {
	t.Parallel()
	s := newStack(t) // 3 attempts, 1 s apart
	var mu sync.Mutex
	seen := map[string]bool{}
	var rs *receiverServer
	rs = newReceiverServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		var env struct{ ID string }
		_ = json.Unmarshal(rs.Hits()[n-1].body, &env) // the server has read the body already
		mu.Lock()
		first := !seen[env.ID]
		seen[env.ID] = true
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	// Retries 3 s apart: long enough for every retry to be scheduled
	// before the first is due, even on a loaded machine.
	r := s.receiver(rs.URL, map[string]any{"retry": map[string]any{"intervals": []string{"3s", "3s"}}})
	// Fewer failures than open the worker's circuit breaker for the receiver.
	const total = 6
	ids := make([]string, total)
	for i := range ids {
		ids[i] = s.send(r.ID, fmt.Sprintf("order-%d", i), map[string]any{"n": i})
	}
	// Wait until every retry is scheduled in Redis, then lose them all.
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := insp.GetQueueInfo(tasks.QueueRetry)
		if err == nil && info.Scheduled == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retries not scheduled: %+v %v", info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.flushRedis()
	// Let every retry come due (and not happen).
	var lastDue time.Time
	if err := s.store.Pool().QueryRow(context.Background(), `SELECT max(next_attempt_at) FROM notifications WHERE status = 'pending'`).
		Scan(&lastDue); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(lastDue) + time.Second)
	if got := len(rs.Hits()); got != total {
		t.Fatalf("receiver got %d requests with the retries lost, want %d", got, total)
	}

	sched := s.newRedrive(time.Millisecond)
	if res := s.redrive(sched); res.Scanned != total || res.Enqueued != total {
		t.Fatalf("re-drive: %+v", res)
	}
	s.waitCount(ids, store.StatusDelivered, total, 10*time.Second)
	per := hitsByID(t, rs)
	for _, id := range ids {
		n := s.waitStatus(id, store.StatusDelivered, time.Second)
		if per[id] != 2 || n.Attempts != 2 || len(s.attempts(id)) != 2 {
			t.Errorf("%s: %d requests, %d attempts; want 2 (one failure, one delivery)", id, per[id], n.Attempts)
		}
	}
	if res := s.redrive(sched); res.Scanned != 0 {
		t.Fatalf("re-drive after delivery: %+v", res)
	}
}

// A Go-client notification is recorded in Postgres with its first attempt;
// one deferred because its receiver stays down (its circuit is open and a
// probe failed: an outage can last hours) is recorded before it goes back
// to Redis, so the re-drive brings it back after Redis loses it.
func TestRedriveAfterRedisLosesDeferredGoClientNotifications(t *testing.T) {
	t.Parallel()
	s := newStack(t, withWorker(func(w *worker.Config) {
		w.Breaker = worker.BreakerConfig{Failures: 1, Cooldown: 200 * time.Millisecond}
	}))
	var down atomic.Bool
	down.Store(true)
	rs := newReceiverServer(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	r := s.receiver(rs.URL, nil)
	// The first failure opens the circuit; the next ones are deferred
	// without an attempt. A probe fails, the outage is prolonged, and the
	// deferred ones are recorded as pending.
	first := s.notifyGo(r.ID, "order-0")
	s.waitStatus(first, store.StatusPending, 10*time.Second)
	const total = 5
	ids := []string{first}
	for i := 1; i < total; i++ {
		ids = append(ids, s.notifyGo(r.ID, fmt.Sprintf("order-%d", i)))
	}
	// All five on record, and some of them by a deferral alone (no attempt:
	// only a recorded deferral puts a notification there without one).
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var pending, unattempted int
		if err := s.store.Pool().QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE attempts = 0)
			FROM notifications WHERE status = 'pending'`).Scan(&pending, &unattempted); err != nil {
			t.Fatal(err)
		}
		if pending == total && unattempted > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pending on record, %d of them deferred without an attempt; want %d and some", pending, unattempted, total)
		}
	}
	s.flushRedis()
	down.Store(false)

	// The re-drive runs until every one is back and delivered.
	sched := s.newRedrive(time.Millisecond)
	for deadline := time.Now().Add(20 * time.Second); s.countStatus(ids, store.StatusDelivered) < total; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered after the re-drive", s.countStatus(ids, store.StatusDelivered), total)
		}
		s.redrive(sched)
	}
	for _, id := range ids {
		if as := s.attempts(id); as[len(as)-1].Outcome != store.OutcomeSuccess {
			t.Errorf("%s: attempts %+v", id, as)
		}
	}
}
