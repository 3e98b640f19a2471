package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/tasks"
)

// A batch task (tasks.TypeBatch) carries several notifications' attempts.
// Everything a notification promises stays per member: each is delivered
// by the same steps as a single task (deliver), under the same limits (the
// worker-wide deliveryLimit counts deliveries, not tasks; per-receiver
// slots, circuit, slow start), in its own trace. What a single task hands
// back to Asynq (a deferral, a retry after an infrastructure error, a
// shutdown) a member gets as its own task instead, at its own time, so
// that the batch itself completes once every member is settled or handed
// on. If even that fails (Redis gone), the whole batch goes back to Asynq:
// rerun, it re-delivers only what is not on record, as after a SIGKILL.

// errHandedBack: the worker is stopping and the member was not started.
var errHandedBack = errors.New("worker stopping: member handed back")

// memberPatience is how long a batch waits for its slowest members. A
// member still running then is guarded by its own task, due once the
// longest attempt is surely over (guardAfter): run by this worker's
// successors, it finds the attempt on record and does nothing, or makes it
// if this worker died meanwhile. Without it a hanging receiver's member
// would hold its batch, and one of Asynq's task slots with it, for the
// receiver's whole timeout, and the other receivers' notifications behind
// it (the bench's isolation run: healthy p99 of tens of seconds).
const memberPatience = time.Second

// errStillRunning: the member's attempt outlived memberPatience.
var errStillRunning = errors.New("still running when its batch completed: guarded by its own task")

// memberOutcome is one member's delivery result.
type memberOutcome struct {
	i   int
	err error
}

// processBatch opens a batch and fans its members out.
func (h *handler) processBatch(ctx context.Context, t *asynq.Task) error {
	members, err := h.openBatch(t)
	if err != nil {
		return err
	}
	// Held until the late members' guards are run: a shutdown cuts those
	// members short (finish), and their guards must be run at once before
	// the worker exits, rather than be found at their own time (guardAfter).
	settled := h.members.hold()
	outcomes := make([]error, len(members))
	done := make([]bool, len(members))
	results := make(chan memberOutcome, len(members))
	running := 0
	for i, d := range members {
		if err := d.CheckID(); err != nil {
			outcomes[i], done[i] = h.refuse("id_mismatch", d, err), true
			continue
		}
		if err := h.deliveries.take(ctx); err != nil {
			outcomes[i], done[i] = err, true // not started: handed on below
			continue
		}
		running++
		h.members.run(ctx, func(ctx context.Context) {
			defer h.deliveries.give()
			results <- memberOutcome{i, h.deliver(ctx, d)}
		})
	}
	late := running - awaitMembers(results, running, outcomes, done)
	for i := range members {
		if !done[i] {
			outcomes[i] = &retryLater{after: h.guardAfter(), err: errStillRunning}
		}
	}
	metrics.BatchMembers.Observe(float64(len(members)))
	if err := h.handOn(ctx, members, outcomes); err != nil {
		settled()
		return err
	}
	go func() {
		defer settled()
		h.settleLate(members, results, late)
	}()
	batchID, _ := asynq.GetTaskID(ctx)
	if err := enqueue.Unmark(context.WithoutCancel(ctx), h.rdb, batchID, members); err != nil {
		// The markers expire on their own; meanwhile a repeat finds the
		// batch gone and queues again, which the worker records once.
		h.logger.Warn("batch done; its markers stay until they expire", "task_id", batchID, "err", err)
	}
	return nil
}

// awaitMembers collects the running members' outcomes for up to
// memberPatience and returns how many it collected. The others are
// guarded; settleLate reads their outcomes.
func awaitMembers(results <-chan memberOutcome, running int, outcomes []error, done []bool) (collected int) {
	timer := time.NewTimer(memberPatience)
	defer timer.Stop()
	for ; collected < running; collected++ {
		select {
		case r := <-results:
			outcomes[r.i], done[r.i] = r.err, true
		case <-timer.C:
			return collected
		}
	}
	return collected
}

// settleLate reads the outcomes of the n members that outlived their
// batch. One that is settled (its attempt on record, any retry queued by
// itself) has its guard deleted: run, it would only find the attempt on
// record, a task run and a look-up per notification for a receiver that
// answers slowly. One that must be tried again (deferred, cut short, failed
// on our side) has its guard run now rather than at the guard's time: the
// worker then decides again, as for any single task.
func (h *handler) settleLate(members []*tasks.Deliver, results <-chan memberOutcome, n int) {
	for range n {
		r := <-results
		d := *members[r.i]
		d.QueueShards = tasks.ShardsOf(h.queue)
		if r.err == nil || errors.Is(r.err, asynq.SkipRetry) {
			if err := h.inspector.DeleteTask(d.Queue(), d.TaskID()); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				h.logger.Debug("batch member settled: its guard runs at its own time and finds it on record", "notification_id", d.ID, "err", err)
			}
			continue
		}
		if err := h.inspector.RunTask(d.Queue(), d.TaskID()); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			h.logger.Warn("batch member: its guard runs at its own time", "notification_id", d.ID, "attempt", d.Attempt, "err", err)
		}
	}
}

// guardAfter is when a guarded member's own task is due: after the longest
// attempt this worker makes, and its record, are over.
func (h *handler) guardAfter() time.Duration { return h.maxTimeout + 30*time.Second }

// openBatch checks a batch's seal; one that fails is dropped whole, like a
// single task (handler.open).
func (h *handler) openBatch(t *asynq.Task) ([]*tasks.Deliver, error) {
	members, err := tasks.OpenBatch(h.keys, t.Payload())
	if err != nil {
		return nil, h.refuseUnopened("batch", err)
	}
	return members, nil
}

// handOn queues, as its own task, every member whose delivery must happen
// later: deferred (at its deferral's time, same attempt), cut short or not
// started (now), or failed on our infrastructure (after Asynq's backoff).
// Settled members (delivered, recorded, dropped) need nothing. An error
// means a member could not be queued: the caller hands the whole batch back.
func (h *handler) handOn(ctx context.Context, members []*tasks.Deliver, outcomes []error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for i, err := range outcomes {
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			continue
		}
		due := time.Now().Add(handOnDelay(err))
		d := *members[i]
		d.QueueShards = tasks.ShardsOf(h.queue) // the payload does not carry it
		task, terr := d.Task(h.keys, asynq.ProcessAt(due))
		if terr == nil {
			_, terr = h.queue.EnqueueContext(ctx, task)
		}
		if terr != nil && !errors.Is(terr, asynq.ErrTaskIDConflict) {
			return h.infra("redis", fmt.Errorf("batch member %s: hand on: %w", d.ID, terr))
		}
		var rl *retryLater
		if !errors.As(err, &rl) {
			h.logger.Info("batch member handed on as its own task", "notification_id", d.ID, "attempt", d.Attempt, "reason", err)
		}
	}
	return nil
}

// handOnDelay is when a member handed on is due: a deferral's own delay,
// at once for a member the worker did not finish because it is stopping,
// the first step of Asynq's backoff (retryDelay) for anything else.
func handOnDelay(err error) time.Duration {
	var rl *retryLater
	switch {
	case errors.As(err, &rl):
		return rl.after
	case errors.Is(err, errHandedBack), errors.Is(err, context.Canceled):
		return 0
	}
	return retryDelay(0, err, nil)
}

// deliveryLimit is the worker-wide cap on deliveries running at once
// (Config.Concurrency). Asynq's own concurrency counts tasks, and a batch
// task is many deliveries.
type deliveryLimit struct {
	slots    chan struct{}
	stopping chan struct{}
	stopOnce sync.Once
}

func newDeliveryLimit(n int) *deliveryLimit {
	return &deliveryLimit{slots: make(chan struct{}, n), stopping: make(chan struct{})}
}

// take waits for a delivery slot; it fails with errHandedBack once the
// worker is stopping (a member not started is handed on, not begun), or
// with ctx's error.
func (l *deliveryLimit) take(ctx context.Context) error {
	select {
	case <-l.stopping:
		return errHandedBack
	default:
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-l.stopping:
		return errHandedBack
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *deliveryLimit) give() { <-l.slots }

// stop makes take refuse from now on: the worker is shutting down.
func (l *deliveryLimit) stop() { l.stopOnce.Do(func() { close(l.stopping) }) }

// batchMembers runs batch members, which may outlive their batch's
// handler (memberPatience), so their context is not the handler's: a
// shutdown gives them what is left of its timeout once Asynq's handlers
// are done, then cuts them short (finish).
type batchMembers struct {
	wg      sync.WaitGroup
	stopped context.Context // done once finish cuts the members short
	stop    context.CancelFunc
}

func newBatchMembers() *batchMembers {
	m := &batchMembers{}
	m.stopped, m.stop = context.WithCancel(context.Background())
	return m
}

// run starts f in a goroutine of its own with ctx's values, cancelled by
// finish rather than by ctx.
func (m *batchMembers) run(ctx context.Context, f func(context.Context)) {
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer cancel()
		defer context.AfterFunc(m.stopped, cancel)()
		f(mctx)
	}()
}

// hold makes finish wait until release is called, for what follows a
// batch's members (settleLate); it is taken before the members start.
func (m *batchMembers) hold() (release func()) {
	m.wg.Add(1)
	return m.wg.Done
}

// finish waits up to grace for the members still running to end on their
// own, then cancels those left and waits up to timeout for them to return.
// Each is guarded by its own task, so none cut short is lost.
func (m *batchMembers) finish(grace, timeout time.Duration) {
	defer m.stop()
	finished := make(chan struct{})
	go func() { m.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return
	case <-time.After(grace):
	}
	m.stop()
	select {
	case <-finished:
	case <-time.After(timeout):
	}
}
