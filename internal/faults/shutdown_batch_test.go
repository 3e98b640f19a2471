package faults

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/fleet"
	"github.com/notifyd/notifyd/notifier"
)

// TestGracefulShutdownMidBatch sends SIGTERM to a worker in the middle of
// batch tasks (issue 14): the Go client's NotifyMany queued 240
// notifications in tasks of 60, two receivers in ten hold their
// requests for 5 s until the SIGTERM (each gets two at a time, its slow
// start; the rest of their members are deferred as their own tasks), the
// others take 150–300 ms, and the worker runs 12 deliveries at once, so at
// the SIGTERM members of the batches are on record, in flight (the slow
// ones past the batch's patience, guarded by their own tasks) or waiting
// for a delivery slot (handed back at once). The worker must exit 0 within its
// shutdown timeout plus the 5 s it gives the members that outlived their
// batch; every attempt it had not recorded must be queued, and one cut
// short must be queued to run at once (its guard run before the exit, not
// a minute later); a new worker must then finish everything promptly,
// without sending again what was answered and recorded, and without
// recording an attempt number twice.
func TestGracefulShutdownMidBatch(t *testing.T) {
	faultTest(t)
	start := time.Now()
	const (
		notifications   = 240
		receiverCount   = 10
		concurrency     = 12
		perBatch        = 60
		shutdownTimeout = 3 * time.Second
	)
	slow := func(idx int) bool { return idx < 2 }
	var termed atomic.Bool // slow receivers hold requests only until the SIGTERM
	rs := newReceivers(t, receiverCount, func(idx int, id string, attempt int) (time.Duration, int) {
		if slow(idx) && !termed.Load() {
			return 5 * time.Second, 200
		}
		return time.Duration(150+roll("delay", id, attempt)%150) * time.Millisecond, 200
	})
	c := newCluster(t, "", map[string]string{
		"NOTIFYD_WORKER_CONCURRENCY": strconv.Itoa(concurrency),
		"NOTIFYD_SHUTDOWN_TIMEOUT":   shutdownTimeout.String(),
		"NOTIFYD_DELIVERY_TIMEOUT":   "10s",
	})
	_, a := c.startAPI()
	ids := notifyManyBatches(t, c, a.createReceivers(rs), notifications, perBatch)

	w1, _ := c.start("worker", nil)
	waitFor(t, "the worker to be in the middle of its batches", 30*time.Second, func() bool {
		slowInFlight := 0
		for _, r := range rs.Snapshot() {
			if r.End.IsZero() && slow(r.Receiver) {
				slowInFlight++
			}
		}
		return rs.Completed() >= 30 && slowInFlight >= 2
	})
	atTerm := rs.Snapshot()
	termed.Store(true)
	w1.signal(t, syscall.SIGTERM)
	termAt := time.Now()
	if bound := shutdownTimeout + 5*time.Second + 2*time.Second; !w1.Wait(bound) {
		t.Fatalf("worker still running %s after SIGTERM (shutdown timeout %s, + 5 s for batch members)", bound, shutdownTimeout)
	}
	t.Logf("worker exited %s after SIGTERM (exit code %d)", time.Since(termAt).Round(time.Millisecond), w1.ExitCode())
	if w1.ExitCode() != 0 {
		t.Errorf("worker exit code %d after SIGTERM, want 0", w1.ExitCode())
	}
	answered := checkAtExit(t, c, atTerm, ids)
	if n := strings.Count(w1.Log(), "member handed back"); n == 0 {
		t.Error("no batch member waiting for a slot was handed back: the SIGTERM did not come mid-batch")
	} else {
		t.Logf("%d batch members not started were handed back", n)
	}

	c.start("worker", nil)
	// Every attempt is queued to run now, or within a receiver-busy
	// deferral: nothing waits for a guard's own time (a minute).
	c.waitTerminal(t, notifications, 30*time.Second)
	aud := checkRecords(t, c, rs, ids)
	c.checkNoDuplicateAttempts(t)
	if aud.failed != 0 {
		t.Errorf("%d notifications failed; every receiver accepts the first attempt it answers", aud.failed)
	}
	for id, extra := range aud.extra {
		switch {
		case extra > 1:
			t.Errorf("%s: receivers got %d requests more than recorded attempts; at most the one cut short", id, extra)
		case extra > 0 && answered[id]:
			t.Errorf("%s: answered and recorded before the shutdown, sent again after it", id)
		}
	}
	t.Logf("%d requests sent again after the restart; test took %s", aud.extraTotal, time.Since(start).Round(time.Second))
}

// notifyManyBatches queues n notifications with the Go client's NotifyMany,
// perBatch at a time (one batch task each), notification i to
// receivers[i % len(receivers)], and returns their ids in order.
func notifyManyBatches(t *testing.T, c *cluster, receivers []string, n, perBatch int) []string {
	t.Helper()
	client, err := notifier.NewFromURL(c.redisURL, notifier.WithAllowPrivateTargets(true))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ids := make([]string, 0, n)
	for start := 0; start < n; start += perBatch {
		ns := make([]notifier.Notification, min(perBatch, n-start))
		for k := range ns {
			i := start + k
			ns[k] = notifier.Notification{ReceiverID: receivers[i%len(receivers)], EventType: "trade.paid",
				IdempotencyKey: "order-" + strconv.Itoa(i), Payload: json.RawMessage(`{"i":` + strconv.Itoa(i) + `}`)}
		}
		res, err := client.NotifyMany(context.Background(), ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// checkAtExit checks Postgres and Redis once the worker has exited: every
// request in flight at the SIGTERM (atTerm) was answered and recorded, or
// its attempt is queued to run at once; every notification is on record
// or queued; no task is left active. It returns the notifications whose
// attempt a receiver answered and Postgres recorded before the exit.
func checkAtExit(t *testing.T, c *cluster, atTerm []fleet.Request, ids []string) (answered map[string]bool) {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(c.redis(t))
	waiting := queuedAttempts(t, insp)
	notes := c.load(t)
	recorded := func(id string, attempt int) bool {
		if n := notes[id]; n != nil {
			_, ok := n.rows[attempt]
			return ok
		}
		return false
	}
	finished, cut := 0, 0
	for _, r := range atTerm {
		if !r.End.IsZero() {
			continue
		}
		switch state := waiting[r.ID+":"+strconv.Itoa(r.Attempt)]; {
		case recorded(r.ID, r.Attempt):
			finished++
		case state == asynq.TaskStatePending:
			cut++
		case state != 0:
			t.Errorf("%s attempt %d: in flight at SIGTERM, not recorded, queued as %v: want it to run at once", r.ID, r.Attempt, state)
		default:
			t.Errorf("%s attempt %d: in flight at SIGTERM, neither recorded nor queued", r.ID, r.Attempt)
		}
	}
	answered = map[string]bool{}
	notStarted := 0
	for _, id := range ids {
		n := notes[id]
		switch {
		case n != nil && n.status != "pending":
			answered[id] = true
		case n == nil && waiting[id+":1"] != 0:
			notStarted++ // only in Redis, as the Go client queued it
		case n == nil:
			t.Errorf("%s: neither in Postgres nor queued after the shutdown", id)
		case waiting[id+":"+strconv.Itoa(n.attempts+1)] == 0:
			t.Errorf("%s: pending after %d attempts but attempt %d is not queued", id, n.attempts, n.attempts+1)
		}
	}
	t.Logf("of the requests in flight at SIGTERM, %d finished and recorded, %d cut short and queued; %d notifications not started",
		finished, cut, notStarted)
	if cut == 0 {
		t.Error("the SIGTERM cut no request short: the test proved little")
	}
	checkNoActiveTasks(t, insp)
	return answered
}
