package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/notifyd/notifyd/internal/batcher"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tracing"
)

// ErrRecorderClosed is returned by Record after the recorder has stopped.
var ErrRecorderClosed = errors.New("attempt recorder closed")

// attemptWriter is the part of the store the recorder needs.
type attemptWriter interface {
	RecordAttempts(ctx context.Context, batch []store.AttemptRecord) error
}

// recorder groups attempt records from concurrent handlers into one database
// statement (a batcher: one row when idle, growing with load). A handler's
// Record returns only once its row is committed, so an acknowledged task
// always has its attempt on record.
//
// When the database is unreachable the recorder keeps the batch and retries
// with backoff; rows are never dropped while the process lives, and the
// statement is idempotent, so a retry after an ambiguous failure does not
// record an attempt twice.
type recorder struct {
	w       attemptWriter
	logger  *slog.Logger
	batches *batcher.Batcher[*pendingRecord, uuid.UUID]
}

type pendingRecord struct {
	rec  store.AttemptRecord
	done chan error
	// span is the record span's context when it records, for the batch
	// span's link to it (see worker/tracing.go).
	span trace.SpanContext
}

func newRecorder(w attemptWriter, logger *slog.Logger, maxBatch int) *recorder {
	r := &recorder{w: w, logger: logger}
	// Two attempts of one notification must go in separate statements
	// (see store.RecordAttempts).
	byNotification := func(p *pendingRecord) uuid.UUID { return p.rec.NotificationID }
	r.batches = batcher.New(maxBatch, time.Millisecond, r.flush, byNotification)
	return r
}

// start launches the flusher.
func (r *recorder) start() { r.batches.Start() }

// Record queues rec and waits until it is committed or ctx ends. When ctx
// ends first the row is still written later (the caller should hand its task
// back; the retried task will find the attempt on record).
func (r *recorder) Record(ctx context.Context, rec store.AttemptRecord) (err error) {
	ctx, span := traceRecord(ctx, &rec)
	defer func() { endSpan(span, err) }()
	p := &pendingRecord{rec: rec, done: make(chan error, 1)}
	if span.IsRecording() {
		p.span = span.SpanContext()
	}
	switch err := r.batches.Add(ctx, p); {
	case errors.Is(err, batcher.ErrClosed):
		return ErrRecorderClosed
	case err != nil:
		return err
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
	if !r.batches.Close(deadline) {
		r.logger.Error("attempt recorder: gave up writing queued attempts at shutdown; their tasks will be retried")
	}
}

func (r *recorder) flush(batch []*pendingRecord) {
	recs := make([]store.AttemptRecord, len(batch))
	for i, p := range batch {
		recs[i] = p.rec
	}
	span := traceBatch(batch)
	defer span.End()
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
			tracing.Fail(span, err)
			for _, p := range batch {
				p.done <- err
			}
			return
		}
		span.AddEvent("database unavailable; retrying", trace.WithAttributes(attribute.String("error", err.Error())))
		if attempt == 1 || attempt%20 == 0 {
			r.logger.Warn("attempt recorder: database unavailable, holding attempts and retrying",
				"rows", len(batch), "tries", attempt, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-r.batches.Stopping():
			// Shutting down: keep trying until close's deadline; the
			// process exit ends us if it passes.
			time.Sleep(backoff)
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
