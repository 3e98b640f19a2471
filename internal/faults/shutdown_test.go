package faults

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/fleet"
	"github.com/notifyd/notifyd/internal/tasks"
)

// TestGracefulShutdown sends SIGTERM to a busy worker. Most receivers take
// about a second to answer (the worker should wait for them and record the
// attempts); one takes 8 s, longer than the shutdown timeout (those
// deliveries must be handed back to the queue). The worker must exit within
// the shutdown timeout plus a few seconds, every delivery it had in flight
// must be recorded or queued again, nothing may stay active in Redis, and a
// new worker must finish everything.
func TestGracefulShutdown(t *testing.T) {
	faultTest(t)
	start := time.Now()
	const (
		notifications   = 300
		receiverCount   = 20
		shutdownTimeout = 3 * time.Second
		slowReceiver    = 0
	)
	rs := newReceivers(t, receiverCount, func(idx int, id string, attempt int) (time.Duration, int) {
		if idx == slowReceiver {
			return 8 * time.Second, 200
		}
		return time.Duration(900+roll("delay", id, attempt)%200) * time.Millisecond, 200
	})
	c := newCluster(t, "", map[string]string{
		"NOTIFYD_WORKER_CONCURRENCY": "40",
		"NOTIFYD_SHUTDOWN_TIMEOUT":   shutdownTimeout.String(),
		"NOTIFYD_DELIVERY_TIMEOUT":   "15s",
		"NOTIFYD_RETRY_MAX_ATTEMPTS": "3",
	})
	_, a := c.startAPI()
	receiverIDs := a.createReceivers(rs)
	ids := a.ingestAll(receiverIDs, notifications, 16)

	w1, _ := c.start("worker", nil)
	inFlight := func() []fleet.Request {
		var out []fleet.Request
		for _, r := range rs.Snapshot() {
			if r.End.IsZero() {
				out = append(out, r)
			}
		}
		return out
	}
	waitFor(t, "the worker to be busy with slow and fast deliveries", 60*time.Second, func() bool {
		slow := 0
		for _, r := range inFlight() {
			if r.Receiver == slowReceiver {
				slow++
			}
		}
		return rs.Completed() >= 40 && rs.Active() >= 30 && slow >= 2
	})
	atTerm := inFlight()
	w1.signal(t, syscall.SIGTERM)
	termAt := time.Now()
	if !w1.Wait(shutdownTimeout + 10*time.Second) {
		t.Fatalf("worker still running %s after SIGTERM (shutdown timeout %s)", time.Since(termAt).Round(time.Millisecond), shutdownTimeout)
	}
	t.Logf("worker exited %s after SIGTERM with %d deliveries in flight (exit code %d)",
		time.Since(termAt).Round(time.Millisecond), len(atTerm), w1.ExitCode())
	if w1.ExitCode() != 0 {
		t.Errorf("worker exit code %d after SIGTERM, want 0", w1.ExitCode())
	}

	insp := asynq.NewInspectorFromRedisClient(c.redis(t))
	// What is queued now: single tasks and the members of batch tasks.
	waiting := queuedAttempts(t, insp)
	queued := func(id string, attempt int) bool { return waiting[id+":"+strconv.Itoa(attempt)] != 0 }

	// Every delivery in flight at SIGTERM was either finished and recorded
	// (the worker waited) or handed back to the queue.
	notes := c.load(t)
	recorded, handedBack := 0, 0
	for _, r := range atTerm {
		n := notes[r.ID]
		if n == nil {
			t.Errorf("%s: in flight at SIGTERM but not in Postgres", r.ID)
			continue
		}
		_, isRecorded := n.rows[r.Attempt]
		isQueued := queued(r.ID, r.Attempt)
		switch {
		case isRecorded:
			// A copy of the task still queued would be harmless: the
			// worker skips a task whose attempt is on record.
			recorded++
		case isQueued:
			handedBack++
		default:
			t.Errorf("%s attempt %d: in flight at SIGTERM, neither recorded nor back in the queue", r.ID, r.Attempt)
		}
	}
	t.Logf("of %d deliveries in flight at SIGTERM: %d finished and recorded, %d handed back", len(atTerm), recorded, handedBack)
	if recorded == 0 {
		t.Error("the worker recorded none of the ~1 s deliveries it had in flight; it should wait for them")
	}
	if handedBack == 0 {
		t.Error("none of the 8 s deliveries was handed back")
	}
	// A delivery our own shutdown cut short is not the receiver's failure.
	for id, n := range notes {
		for no, row := range n.rows {
			if strings.Contains(row.err, "context canceled") {
				t.Errorf("%s attempt %d recorded as %s %q: the shutdown, not the receiver, ended it", id, no, row.outcome, row.err)
			}
		}
	}
	// Nothing is left "active" for a lease to expire; every pending
	// notification has its next attempt queued.
	checkNoActiveTasks(t, insp)
	for id, n := range notes {
		if n.status == "pending" && !queued(id, n.attempts+1) {
			t.Errorf("%s: pending after %d attempts but attempt %d is not queued", id, n.attempts, n.attempts+1)
		}
	}

	w2, _ := c.start("worker", nil)
	c.waitTerminal(t, notifications, 90*time.Second)
	aud := checkRecords(t, c, rs, ids)
	if aud.failed != 0 {
		t.Errorf("%d notifications failed; every receiver accepts the first attempt it answers", aud.failed)
	}
	for id, extra := range aud.extra {
		if extra > 1 {
			t.Errorf("%s: receivers got %d requests more than recorded attempts", id, extra)
		}
	}
	checkNoActiveTasks(t, insp)

	// Manual redeliveries in flight at SIGTERM: the same must hold. The
	// handed-back task reuses its redelivery number, so an aborted request
	// on record would also hide the real answer of the retry.
	var manual []string
	for i := slowReceiver; i < notifications && len(manual) < 5; i += receiverCount {
		manual = append(manual, ids[i])
	}
	for _, id := range manual {
		code, raw, err := a.Try("POST", "/v1/notifications/"+id+"/redeliver", adminToken, nil, nil)
		if err != nil || code != 202 {
			t.Fatalf("redeliver %s: %d %s %v", id, code, raw, err)
		}
	}
	waitFor(t, "the manual redeliveries to be in flight", 30*time.Second, func() bool {
		n := 0
		for _, r := range inFlight() {
			if r.Attempt == 0 {
				n++
			}
		}
		return n == len(manual)
	})
	w2.signal(t, syscall.SIGTERM)
	if !w2.Wait(shutdownTimeout + 10*time.Second) {
		t.Fatal("second worker did not exit after SIGTERM")
	}
	c.start("worker", nil)
	manualRow := func(id string) (outcome, errText string, code int, ok bool) {
		err := c.db.QueryRow(context.Background(), `SELECT outcome::text, coalesce(error, ''), coalesce(status_code, 0)
			FROM delivery_attempts WHERE notification_id = $1 AND attempt_no = -1`, id).Scan(&outcome, &errText, &code)
		return outcome, errText, code, err == nil
	}
	waitFor(t, "the manual redeliveries to be answered and recorded", 60*time.Second, func() bool {
		answered := make(map[string]bool)
		for _, r := range rs.Snapshot() {
			if r.Attempt == 0 && r.Code == 200 {
				answered[r.ID] = true
			}
		}
		for _, id := range manual {
			if _, _, _, ok := manualRow(id); !ok || !answered[id] {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // a real answer recorded late would still land now
	for _, id := range manual {
		outcome, errText, code, _ := manualRow(id)
		if outcome != "success" || code != 200 {
			t.Errorf("%s: manual redelivery 1 recorded as %s %d %q; the receiver answered 200", id, outcome, code, errText)
		}
	}
	checkNoActiveTasks(t, insp)
	t.Logf("test took %s", time.Since(start).Round(time.Second))
}

// checkNoActiveTasks fails the test if any delivery task is marked active.
func checkNoActiveTasks(t *testing.T, insp *asynq.Inspector) {
	t.Helper()
	for q := range tasks.QueueWeights {
		active, err := insp.ListActiveTasks(q)
		if errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range active {
			t.Errorf("task %s still active in queue %s", ti.ID, q)
		}
	}
}

// queuedAttempts returns the attempts ("<notification>:<attempt>") that
// tasks waiting in Redis (pending, scheduled or retry) will make, whether
// as single tasks or as members of a batch task, with their task's state.
func queuedAttempts(t *testing.T, insp *asynq.Inspector) map[string]asynq.TaskState {
	t.Helper()
	out := map[string]asynq.TaskState{}
	for q := range tasks.QueueWeights {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			insp.ListPendingTasks, insp.ListScheduledTasks, insp.ListRetryTasks,
		} {
			infos, err := list(q, asynq.PageSize(100000))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, info := range infos {
				addQueued(t, out, info)
			}
		}
	}
	return out
}

// addQueued adds the attempts info's task will make; an attempt queued
// twice keeps the state that runs it first (pending before the others).
func addQueued(t *testing.T, out map[string]asynq.TaskState, info *asynq.TaskInfo) {
	t.Helper()
	add := func(d *tasks.Deliver) {
		if s, ok := out[d.TaskID()]; !ok || info.State == asynq.TaskStatePending && s != asynq.TaskStatePending {
			out[d.TaskID()] = info.State
		}
	}
	if info.Type != tasks.TypeBatch {
		d, err := tasks.Decode(info.Payload)
		if err != nil {
			t.Fatalf("task %s: %v", info.ID, err)
		}
		add(d)
		return
	}
	members, err := tasks.DecodeBatch(info.Payload)
	if err != nil {
		t.Fatalf("batch %s: %v", info.ID, err)
	}
	for _, d := range members {
		add(d)
	}
}
