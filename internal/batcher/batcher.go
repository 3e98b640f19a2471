// Package batcher groups items from concurrent callers into batches for one
// flush function: the worker's state look-ups and attempt writes (one
// Postgres statement per batch) and producers' enqueues (one Asynq task per
// batch, internal/enqueue) all go through it.
package batcher

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by Add once the batcher has stopped.
var ErrClosed = errors.New("batcher closed")

// Batcher groups items from concurrent callers into batches for one flush
// function, run by one goroutine: the worker's starter and recorder each go
// to Postgres as one statement per batch, since Postgres's cost is mostly
// per statement; a producer's enqueues go to Redis as one task per batch.
//
// The flusher sends whatever queued up while the previous flush ran, so a
// batch is one item when idle and grows with load, up to size. When the
// previous batch had more than one item it first waits linger once for
// company (see batchLinger). Callers learn the outcome through their items
// (a channel in each), not from the batcher.
type Batcher[T any, K comparable] struct {
	in     chan T
	size   int
	linger time.Duration
	flush  func(batch []T)
	// key, when set, keeps two items with the same key out of one batch;
	// the later one waits for the next batch.
	key func(T) K

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// New returns a batcher of at most size items per flush; linger is the
// wait for company under load (batchLinger); key (nil: none) keeps items
// with equal keys in separate batches.
func New[T any, K comparable](size int, linger time.Duration, flush func([]T), key func(T) K) *Batcher[T, K] {
	return &Batcher[T, K]{in: make(chan T, size), size: size, linger: linger, flush: flush, key: key, stop: make(chan struct{})}
}

// Start launches the flusher.
func (b *Batcher[T, K]) Start() {
	b.wg.Add(1)
	go b.loop()
}

// Add queues it for the next batch. It fails with ErrClosed once
// Close has begun, and with ctx's error if the queue stays full.
func (b *Batcher[T, K]) Add(ctx context.Context, it T) error {
	select {
	case <-b.stop: // checked first: the select below picks at random
		return ErrClosed
	default:
	}
	select {
	case b.in <- it:
		return nil
	case <-b.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stopping is closed once close has begun.
func (b *Batcher[T, K]) Stopping() <-chan struct{} { return b.stop }

// Close stops accepting items and flushes what is queued, waiting up to
// deadline; it reports whether the flusher finished in time.
func (b *Batcher[T, K]) Close(deadline time.Duration) bool {
	finished := true
	b.stopOnce.Do(func() {
		close(b.stop)
		done := make(chan struct{})
		go func() { b.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(deadline):
			finished = false
		}
	})
	return finished
}

func (b *Batcher[T, K]) loop() {
	defer b.wg.Done()
	f := batchFill[T, K]{b: b, batch: make([]T, 0, b.size), seen: make(map[K]struct{})}
	wait := batchLinger{linger: b.linger}
	for {
		f.begin()
		if len(f.batch) == 0 {
			select {
			case it := <-b.in:
				f.join(it)
			case <-b.stop:
				// Flush what is already queued, then leave.
				select {
				case it := <-b.in:
					f.join(it)
				default:
					return
				}
			}
		}
		wait.start()
	fill:
		for len(f.batch) < b.size {
			select {
			case it := <-b.in:
				f.join(it)
			default:
				if !wait.again() {
					break fill
				}
			}
		}
		wait.sent(len(f.batch))
		b.flush(f.batch)
	}
}

// batchFill is the batch being filled and the items held back from it.
type batchFill[T any, K comparable] struct {
	b           *Batcher[T, K]
	batch       []T
	held, spare []T // held: for the next batch; spare: the previous held's storage
	seen        map[K]struct{}
}

// begin starts a new batch with the items held back from the last one.
func (f *batchFill[T, K]) begin() {
	clear(f.batch) // let flushed items be collected
	f.batch = f.batch[:0]
	clear(f.seen)
	f.held, f.spare = f.spare[:0], f.held
	for _, it := range f.spare {
		f.join(it)
	}
	clear(f.spare)
}

// join puts it in the batch, or holds it for the next one when the batch is
// full or already has an item with its key.
func (f *batchFill[T, K]) join(it T) {
	if len(f.batch) >= f.b.size {
		f.held = append(f.held, it)
		return
	}
	if f.b.key != nil {
		k := f.b.key(it)
		if _, dup := f.seen[k]; dup {
			f.held = append(f.held, it)
			return
		}
		f.seen[k] = struct{}{}
	}
	f.batch = append(f.batch, it)
}

// batchLinger is the flusher's wait for company. A flusher sends whatever
// has queued up; when its previous batch had more than one item (others are
// starting or recording too), it first waits linger once for more. Postgres
// answers quickly enough that batches otherwise stayed at a few rows (the
// wait halved Postgres's CPU per notification in the benchmark). An idle
// worker's batches of one go out at once.
type batchLinger struct {
	linger time.Duration
	busy   bool // the previous batch had more than one item
	waited bool // this batch has had its wait
}

// start begins a batch.
func (b *batchLinger) start() { b.waited = !b.busy }

// again reports, when the queue has run dry, whether to look at it once
// more, after waiting.
func (b *batchLinger) again() bool {
	if b.waited {
		return false
	}
	b.waited = true
	time.Sleep(b.linger)
	return true
}

// sent records the size of the batch that went out.
func (b *batchLinger) sent(items int) { b.busy = items > 1 }
