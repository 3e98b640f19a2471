package enqueue

import (
	"context"
	"errors"
	"time"

	"github.com/notifyd/notifyd/internal/batcher"
	"github.com/notifyd/notifyd/internal/tasks"
)

// DefaultLinger is how long concurrent enqueues wait for company under
// load, like a Kafka producer's linger.ms. An idle producer's enqueue goes
// out at once (a batch of one, an ordinary task): the wait applies only
// while enqueues are arriving faster than Redis answers.
const DefaultLinger = time.Millisecond

// FlushFunc queues one batch of enqueues gathered by a Linger, returning
// one Result per member (Producer.Enqueue, or a wrapper that adds a
// replica acknowledgement).
type FlushFunc func(ctx context.Context, ds []*tasks.Deliver) []Result

// Linger gathers concurrent single enqueues into batches: the first
// enqueue goes out alone at once; those that arrive while a batch is being
// written go together in the next one, which under load first waits linger
// for more (internal/batcher). Every caller waits for its own Result.
type Linger struct {
	b     *batcher.Batcher[*lingerItem, string]
	flush FlushFunc
}

type lingerItem struct {
	d      *tasks.Deliver
	res    Result
	finish func(bool, error) // the member's producer span
	done   chan struct{}
}

// flushTimeout bounds one batch's write: callers stop waiting when their
// own contexts end, the batch goes on.
const flushTimeout = 10 * time.Second

// NewLinger starts a Linger of at most maxMembers per batch
// (tasks.MaxBatchMembers if <= 0) that waits linger for company.
func NewLinger(flush FlushFunc, linger time.Duration, maxMembers int) *Linger {
	if maxMembers <= 0 || maxMembers > tasks.MaxBatchMembers {
		maxMembers = tasks.MaxBatchMembers
	}
	l := &Linger{flush: flush}
	// Two enqueues of one task id go in separate batches, so that the second
	// finds the first's task (AlreadyQueued or Conflict).
	l.b = batcher.New(maxMembers, linger, l.write, func(it *lingerItem) string { return it.d.TaskID() })
	l.b.Start()
	return l
}

// Enqueue queues d with whatever else is being queued now and returns its
// Result once its batch is written, or ctx's error when ctx ends first (d
// may then still be queued). After Close it writes d alone.
func (l *Linger) Enqueue(ctx context.Context, d *tasks.Deliver) (Result, error) {
	it := &lingerItem{d: d, done: make(chan struct{})}
	it.finish = tasks.TraceEnqueue(ctx, d)
	switch err := l.b.Add(ctx, it); {
	case errors.Is(err, batcher.ErrClosed):
		l.write([]*lingerItem{it})
	case err != nil:
		it.finish(false, err)
		return Result{}, err
	}
	select {
	case <-it.done:
		return it.res, it.res.Err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// write is the batcher's flush.
func (l *Linger) write(batch []*lingerItem) {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	ds := make([]*tasks.Deliver, len(batch))
	for i, it := range batch {
		ds[i] = it.d
	}
	res := l.flush(ctx, ds)
	for i, it := range batch {
		it.res = res[i]
		it.finish(it.res.Status == AlreadyQueued, it.res.Err)
		close(it.done)
	}
}

// Close writes what is gathered and stops; later enqueues are written alone.
func (l *Linger) Close() { l.b.Close(time.Minute) }
