package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// ErrRecorderClosed is returned by Record after the recorder has stopped.
var ErrRecorderClosed = errors.New("attempt recorder closed")

// attemptWriter is the part of the store the recorder needs.
type attemptWriter interface {
	RecordAttempts(ctx context.Context, batch []store.AttemptRecord) error
}

// recorder groups attempt records from concurrent handlers into one database
// statement. Its flusher takes whatever has queued up while the previous
// statement ran, so batches are one row when idle and grow with load, and
// under load it waits a millisecond for company (batchLinger; that halved
// Postgres's CPU per notification in the benchmark). A handler's Record
// returns only once its row is committed, so an acknowledged task always has
// its attempt on record.
//
// When the database is unreachable the recorder keeps the batch and retries
// with backoff; rows are never dropped while the process lives, and the
// statement is idempotent, so a retry after an ambiguous failure does not
// record an attempt twice.
type recorder struct {
	w        attemptWriter
	logger   *slog.Logger
	in       chan *pendingRecord
	maxBatch int
	linger   time.Duration

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

type pendingRecord struct {
	rec  store.AttemptRecord
	done chan error
}

func newRecorder(w attemptWriter, logger *slog.Logger, maxBatch int) *recorder {
	r := &recorder{
		w: w, logger: logger, maxBatch: maxBatch, linger: time.Millisecond,
		in:   make(chan *pendingRecord, maxBatch),
		stop: make(chan struct{}),
	}
	return r
}

// start launches the flusher.
func (r *recorder) start() {
	r.wg.Add(1)
	go r.flushLoop()
}

// Record queues rec and waits until it is committed or ctx ends. When ctx
// ends first the row is still written later (the caller should hand its task
// back; the retried task will find the attempt on record).
func (r *recorder) Record(ctx context.Context, rec store.AttemptRecord) error {
	p := &pendingRecord{rec: rec, done: make(chan error, 1)}
	select {
	case r.in <- p:
	case <-r.stop:
		return ErrRecorderClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops accepting new rows, writes what is queued (trying until
// deadline), and returns.
func (r *recorder) close(deadline time.Duration) {
	r.stopOnce.Do(func() {
		close(r.stop)
		done := make(chan struct{})
		go func() { r.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(deadline):
			r.logger.Error("attempt recorder: gave up writing queued attempts at shutdown; their tasks will be retried")
		}
	})
}

func (r *recorder) flushLoop() {
	defer r.wg.Done()
	batch := make([]*pendingRecord, 0, r.maxBatch)
	var carry []*pendingRecord
	seen := make(map[uuid.UUID]struct{}, r.maxBatch)
	wait := batchLinger{linger: r.linger}
	for {
		batch = append(batch[:0], carry...)
		carry = carry[:0]
		if len(batch) == 0 {
			select {
			case p := <-r.in:
				batch = append(batch, p)
			case <-r.stop:
				// Drain what is already queued, then leave.
				select {
				case p := <-r.in:
					batch = append(batch, p)
				default:
					return
				}
			}
		}
		clear(seen)
		for _, p := range batch {
			seen[p.rec.NotificationID] = struct{}{}
		}
		wait.start()
	fill:
		for len(batch) < r.maxBatch {
			select {
			case p := <-r.in:
				// Two attempts of one notification must go in separate
				// statements (see store.RecordAttempts).
				if _, dup := seen[p.rec.NotificationID]; dup {
					carry = append(carry, p)
					continue
				}
				seen[p.rec.NotificationID] = struct{}{}
				batch = append(batch, p)
			default:
				if !wait.again() {
					break fill
				}
			}
		}
		wait.sent(len(batch))
		r.flush(batch)
	}
}

func (r *recorder) flush(batch []*pendingRecord) {
	recs := make([]store.AttemptRecord, len(batch))
	for i, p := range batch {
		recs[i] = p.rec
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := r.w.RecordAttempts(ctx, recs)
		cancel()
		if err == nil {
			metrics.RecorderBatch.Observe(float64(len(batch)))
			for _, p := range batch {
				p.done <- nil
			}
			return
		}
		metrics.RecorderErrors.Inc()
		if !store.IsTransient(err) {
			// A statement the database rejects will not succeed on retry;
			// hand the error to the handlers so their tasks are retried and
			// the problem is visible.
			r.logger.Error("attempt recorder: write rejected", "rows", len(batch), "err", err)
			for _, p := range batch {
				p.done <- err
			}
			return
		}
		if attempt == 1 || attempt%20 == 0 {
			r.logger.Warn("attempt recorder: database unavailable, holding attempts and retrying",
				"rows", len(batch), "tries", attempt, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-r.stop:
			// Shutting down: keep trying until close's deadline; the
			// process exit ends us if it passes.
			time.Sleep(backoff)
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
