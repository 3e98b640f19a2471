package faults

import (
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestWorkerKilledMidBatch kills a worker with SIGKILL while it is in the
// middle of batch tasks (issue 14): the Go client's NotifyMany queued 1,200
// notifications in tasks of 60, one receiver in ten holds its requests for
// 3 s, and the worker runs 30 deliveries at once, so at the kill some
// members of the batches it holds are on record, some in flight and some not
// started. A new worker started once the dead one's lease has expired
// (Asynq gives the tasks back then; the test takes about 90 s) must bring every notification to a
// terminal state, re-deliver only what is not on record, and record no
// attempt number twice.
func TestWorkerKilledMidBatch(t *testing.T) {
	faultTest(t)
	const (
		notifications = 1200
		receiverCount = 10
		concurrency   = 30
		perBatch      = 60
	)
	rs := newReceivers(t, receiverCount, func(idx int, id string, attempt int) (time.Duration, int) {
		if idx == receiverCount-1 && attempt == 1 {
			return 3 * time.Second, 200 // blocks its members of every batch
		}
		delay := time.Duration(20+roll("delay", id, attempt)%80) * time.Millisecond
		if idx < 2 && roll("flaky", id, attempt)%3 == 0 {
			return delay, 500
		}
		return delay, 200
	})
	c := newCluster(t, "", map[string]string{
		"NOTIFYD_WORKER_CONCURRENCY": strconv.Itoa(concurrency),
		"NOTIFYD_DELIVERY_TIMEOUT":   "5s",
	})
	_, a := c.startAPI()
	receiverIDs := a.createReceivers(rs)
	ids := notifyManyBatches(t, c, receiverIDs, notifications, perBatch)

	w1, _ := c.start("worker", nil)
	waitFor(t, "the first worker to be in the middle of its batches", 60*time.Second, func() bool {
		return rs.Completed() >= 200 && rs.Active() >= concurrency/2
	})
	inFlight := rs.Active()
	w1.signal(t, syscall.SIGKILL)
	if !w1.Wait(10*time.Second) || !exitedBySignal(w1, syscall.SIGKILL) {
		t.Fatalf("worker did not die of SIGKILL: %v", w1.WaitErr())
	}
	t.Logf("SIGKILL with %d requests in flight, %d answered before", inFlight, rs.Completed())
	// Asynq hands a dead worker's tasks back once their lease (30 s) has
	// been expired for 30 s more; a worker's recoverer looks at start, so
	// starting the next one after that saves waiting for its next pass.
	time.Sleep(61 * time.Second)
	c.start("worker", nil)
	c.waitTerminal(t, notifications, 2*time.Minute)

	aud, aborted := checkAfterKill(t, c, rs, ids, concurrency)
	c.checkNoDuplicateAttempts(t)
	t.Logf("%d requests cut short, %d resent; %d delivered, %d failed", aborted, aud.extraTotal, aud.delivered, aud.failed)
}
