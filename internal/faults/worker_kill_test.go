package faults

import (
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestWorkerKilledUnderLoad kills a worker with SIGKILL while about a
// hundred deliveries are in flight (2,000 notifications, 20 receivers, 30 %
// of them failing half the time), starts a new worker, and checks that every
// notification still reaches a terminal state with its attempts on record,
// and that the only duplicates are the requests the dead worker had in
// flight.
//
// Asynq gives a dead worker's tasks back only when their lease (30 s) has
// expired and the new worker's recoverer runs (every minute), so this test
// takes a minute and a half.
func TestWorkerKilledUnderLoad(t *testing.T) {
	faultTest(t)
	start := time.Now()
	const (
		notifications = 2000
		receiverCount = 20
		concurrency   = 100
	)
	// Receivers 0, 1, 2, 10, 11, 12 (30 %) fail about half their requests.
	flaky := func(idx int) bool { return idx%10 < 3 }
	rs := newReceivers(t, receiverCount, func(idx int, id string, attempt int) (time.Duration, int) {
		delay := time.Duration(50+roll("delay", id, attempt)%200) * time.Millisecond
		if flaky(idx) && roll("flaky", id, attempt)%2 == 0 {
			return delay, 500
		}
		return delay, 200
	})
	c := newCluster(t, "", map[string]string{
		"NOTIFYD_WORKER_CONCURRENCY": strconv.Itoa(concurrency),
		"NOTIFYD_RETRY_MAX_ATTEMPTS": "4",
		"NOTIFYD_RETRY_BASE":         "500ms",
		"NOTIFYD_RETRY_FACTOR":       "2",
		"NOTIFYD_RETRY_MAX_INTERVAL": "2s",
		"NOTIFYD_DELIVERY_TIMEOUT":   "5s",
	})
	_, a := c.startAPI()
	receiverIDs := a.createReceivers(rs)
	ids := a.ingestAll(receiverIDs, notifications, 16)

	w1, _ := c.start("worker", nil)
	waitFor(t, "the first worker to be busy", 90*time.Second, func() bool {
		return rs.Completed() >= 400 && rs.Active() >= concurrency/2
	})
	inFlight := rs.Active()
	w1.signal(t, syscall.SIGKILL)
	if !w1.Wait(10*time.Second) || !exitedBySignal(w1, syscall.SIGKILL) {
		t.Fatalf("worker did not die of SIGKILL: %v", w1.WaitErr())
	}
	killed := time.Now()
	t.Logf("SIGKILL with %d requests in flight at the receivers, %d answered before", inFlight, rs.Completed())

	c.start("worker", nil)
	c.waitTerminal(t, notifications, 3*time.Minute)
	t.Logf("recovered %s after the kill", time.Since(killed).Round(time.Second))

	aud, aborted := checkAfterKill(t, c, rs, ids, concurrency)
	if aud.failed == 0 || aud.delivered == 0 {
		t.Errorf("want both delivered and failed notifications with flaky receivers, got %d delivered, %d failed", aud.delivered, aud.failed)
	}
	t.Logf("%d requests cut short by the kill, %d resent; test took %s", aborted, aud.extraTotal, time.Since(start).Round(time.Second))
}

// checkAfterKill checks the records after a worker was SIGKILLed with up to
// concurrency requests in flight: each notification was sent at most once
// more than recorded, no more were resent than were in flight, and the kill
// really cut requests short (or the test proved nothing). It returns the
// audit and how many requests the kill cut short.
func checkAfterKill(t *testing.T, c *cluster, rs *receivers, ids []string, concurrency int) (aud *audit, aborted int) {
	t.Helper()
	aud = checkRecords(t, c, rs, ids)
	for id, extra := range aud.extra {
		if extra > 1 {
			t.Errorf("%s: receivers got %d requests more than recorded attempts; only one can have been in flight", id, extra)
		}
	}
	if aud.extraTotal > concurrency {
		t.Errorf("receivers got %d duplicate requests; at most %d (the worker's concurrency) were in flight", aud.extraTotal, concurrency)
	}
	for _, r := range rs.Snapshot() {
		if r.Aborted {
			aborted++
		}
	}
	if aborted == 0 {
		t.Error("no request was cut short by the kill")
	}
	return aud, aborted
}
