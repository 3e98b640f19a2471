package faults

import (
	"context"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFleetAgrees runs notifyd as a fleet: two API processes, three worker
// processes and two schedulers on one Postgres and one Redis. 2,000
// notifications go to healthy, flaky (half their answers fail) and hanging
// (a quarter of their requests outlast the timeout) receivers; mid-run one
// worker is killed with SIGKILL and another stopped with SIGTERM. Then:
//   - every notification is terminal, with its attempts on record once
//     each, and every attempt the receivers saw is on record (checkRecords);
//   - no receiver ever had more requests in flight than the per-receiver
//     cap, measured at the receiver, across all workers;
//   - each cron job ran exactly once per tick of its schedule, across both
//     schedulers (from their logs).
//
// The killed worker's tasks come back only after Asynq's lease (30 s) and
// a recoverer pass (every minute), so the test takes one to two minutes.
func TestFleetAgrees(t *testing.T) {
	faultTest(t)
	start := time.Now()
	const (
		notifications  = 2000
		receiverCount  = 12
		receiverCap    = 4
		workerParallel = 20
	)
	// Receivers in pairs: 0–5 healthy, 6–9 flaky, 10–11 hanging.
	kind := func(idx int) string {
		switch {
		case idx < 6:
			return "healthy"
		case idx < 10:
			return "flaky"
		}
		return "hanging"
	}
	rs := newReceivers(t, receiverCount, func(idx int, id string, attempt int) (time.Duration, int) {
		delay := time.Duration(100+roll("delay", id, attempt)%300) * time.Millisecond
		switch kind(idx) {
		case "flaky":
			if roll("flaky", id, attempt)%2 == 0 {
				return delay, 500
			}
		case "hanging":
			if roll("hang", id, attempt)%4 == 0 {
				return time.Minute, 200
			}
		}
		return delay, 200
	})
	c := newCluster(t, "", map[string]string{
		"NOTIFYD_WORKER_CONCURRENCY":   strconv.Itoa(workerParallel),
		"NOTIFYD_RECEIVER_CONCURRENCY": strconv.Itoa(receiverCap),
		"NOTIFYD_DELIVERY_TIMEOUT":     deliveryTimeout.String(),
		"NOTIFYD_SHUTDOWN_TIMEOUT":     "5s",
		"NOTIFYD_RETRY_MAX_ATTEMPTS":   "4",
		"NOTIFYD_RETRY_BASE":           "500ms",
		"NOTIFYD_RETRY_FACTOR":         "2",
		"NOTIFYD_RETRY_MAX_INTERVAL":   "2s",
		"NOTIFYD_REDRIVE_SCHEDULE":     "@every 2s",
		"NOTIFYD_RETENTION_SCHEDULE":   "@every 3s",
	})
	_, api1 := c.startAPI()
	_, api2 := c.startAPI()
	var even, odd []string
	for i := range receiverCount {
		id := api1.createReceiver("merchant-"+strconv.Itoa(i), rs.URL(i))
		if i%2 == 0 {
			even = append(even, id)
		} else {
			odd = append(odd, id)
		}
	}
	sched1, _ := c.start("scheduler", nil)
	sched2, _ := c.start("scheduler", nil)
	schedulersUp := time.Now()
	// Each API ingests half, to receivers of every kind.
	ids := append(api1.ingestAll(even, notifications/2, 8), api2.ingestAll(odd, notifications/2, 8)...)

	w1, _ := c.start("worker", nil)
	w2, _ := c.start("worker", nil)
	c.start("worker", nil)
	waitFor(t, "the fleet to be busy", 90*time.Second, func() bool { return rs.Completed() >= 400 })
	w1.signal(t, syscall.SIGKILL)
	if !w1.Wait(10*time.Second) || !exitedBySignal(w1, syscall.SIGKILL) {
		t.Fatalf("worker 1 did not die of SIGKILL: %v", w1.WaitErr())
	}
	t.Logf("SIGKILL worker 1 after %d answers, %d requests in flight", rs.Completed(), rs.Active())
	waitFor(t, "more progress", 90*time.Second, func() bool { return rs.Completed() >= 900 })
	w2.signal(t, syscall.SIGTERM)
	if !w2.Wait(30*time.Second) || w2.ExitCode() != 0 {
		t.Fatalf("worker 2 did not stop cleanly on SIGTERM: %v", w2.WaitErr())
	}
	t.Logf("SIGTERM worker 2 after %d answers", rs.Completed())
	c.start("worker", nil) // its replacement, as a supervisor would start

	c.waitTerminal(t, notifications, 3*time.Minute)
	schedulersEnd := time.Now()
	aud := checkRecords(t, c, rs, ids)
	if aud.failed == 0 || aud.delivered == 0 {
		t.Errorf("want both delivered and failed notifications, got %d delivered, %d failed", aud.delivered, aud.failed)
	}
	// Resent requests are those the stopped workers had in flight and
	// could not record: at most their concurrency each.
	if aud.extraTotal > 2*workerParallel {
		t.Errorf("receivers got %d requests more than recorded; at most %d were in flight on the two stopped workers", aud.extraTotal, 2*workerParallel)
	}
	c.checkNoDuplicateAttempts(t)
	checkReceiverCap(t, rs, receiverCap)
	logs := sched1.Log() + sched2.Log()
	checkOncePerTick(t, logs, "redrive", 2*time.Second, schedulersUp, schedulersEnd)
	checkOncePerTick(t, logs, "retention", 3*time.Second, schedulersUp, schedulersEnd)
	t.Logf("test took %s", time.Since(start).Round(time.Second))
}

// checkNoDuplicateAttempts checks in SQL that no attempt number is recorded
// twice for a notification.
func (c *cluster) checkNoDuplicateAttempts(t *testing.T) {
	t.Helper()
	var dup int
	if err := c.db.QueryRow(context.Background(), `SELECT count(*) FROM (
		SELECT notification_id, attempt_no FROM delivery_attempts GROUP BY 1, 2 HAVING count(*) > 1) d`).Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Errorf("%d attempt numbers recorded more than once", dup)
	}
}

// deliveryTimeout is the fleet's NOTIFYD_DELIVERY_TIMEOUT: a worker has
// closed a request it gave up on by then.
const deliveryTimeout = 2 * time.Second

// checkReceiverCap checks, from the requests each receiver saw, that no
// receiver ever had more than limit requests in flight at once, and that
// the limit was reached (else the check proved nothing).
func checkReceiverCap(t *testing.T, rs *receivers, limit int) {
	t.Helper()
	type event struct {
		at    time.Time
		delta int
	}
	byReceiver := make(map[int][]event)
	for _, r := range rs.Snapshot() {
		byReceiver[r.Receiver] = append(byReceiver[r.Receiver], event{r.Start, 1}, event{r.InFlightUntil(deliveryTimeout), -1})
	}
	reached := 0
	for idx, evs := range byReceiver {
		// At equal times an end comes first: the slot was free.
		sort.Slice(evs, func(i, j int) bool {
			if evs[i].at.Equal(evs[j].at) {
				return evs[i].delta < evs[j].delta
			}
			return evs[i].at.Before(evs[j].at)
		})
		in, peak := 0, 0
		for _, e := range evs {
			in += e.delta
			peak = max(peak, in)
		}
		if peak > limit {
			t.Errorf("receiver %d had %d requests in flight at once, cap %d", idx, peak, limit)
		}
		if peak == limit {
			reached++
		}
	}
	if reached == 0 {
		t.Errorf("no receiver reached the cap of %d: the check proved nothing", limit)
	}
	t.Logf("%d of %d receivers reached the cap of %d requests in flight, none exceeded it", reached, len(byReceiver), limit)
}

var (
	finishedLine = regexp.MustCompile(`^time=(\S+) .*msg="scheduler job finished" .*job=(\w+) duration=(\S+)`)
)

// checkOncePerTick checks from the schedulers' logs that job ran exactly
// once in every tick of its schedule (every interval, on the wall clock)
// while both schedulers were up, or not at all in a tick when a run begun
// earlier was still going (a run never overlaps another: the tick is
// skipped, as cron's one-runner rule says).
func checkOncePerTick(t *testing.T, logs, job string, interval time.Duration, from, to time.Time) {
	t.Helper()
	runs := make(map[int64]int) // tick (Unix seconds) → runs
	var spans [][2]time.Time    // every run's start and end
	for _, line := range strings.Split(logs, "\n") {
		m := finishedLine.FindStringSubmatch(line)
		if m == nil || m[2] != job {
			continue
		}
		at, err1 := time.Parse(time.RFC3339Nano, m[1])
		took, err2 := time.ParseDuration(m[3])
		if err1 != nil || err2 != nil {
			t.Fatalf("unreadable log line %q: %v %v", line, err1, err2)
		}
		// The log's time is cut to the millisecond: the run started up to
		// a millisecond later than this says.
		start := at.Add(time.Millisecond - took)
		runs[start.Truncate(interval).Unix()]++
		spans = append(spans, [2]time.Time{start, at})
	}
	stillRunning := func(tick time.Time) bool {
		for _, sp := range spans {
			if sp[0].Before(tick) && sp[1].After(tick) {
				return true
			}
		}
		return false
	}
	ticks := 0
	for tick := from.Truncate(interval).Add(interval); tick.Add(interval).Before(to); tick = tick.Add(interval) {
		ticks++
		if n := runs[tick.Unix()]; n != 1 && !(n == 0 && stillRunning(tick)) {
			t.Errorf("%s: tick %s ran %d times across the schedulers, want once", job, tick.Format("15:04:05"), n)
		}
	}
	if ticks < 5 {
		t.Errorf("%s: only %d ticks observed", job, ticks)
	}
	t.Logf("%s: checked %d ticks across two schedulers", job, ticks)
}
