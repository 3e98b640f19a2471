// Package tasks defines the Asynq tasks that carry notifications from
// producers to workers: their type names, queues, ids and payload encoding.
// Producers (notifier, the HTTP ingest, the re-drive job) and the worker all
// go through this package so that they agree on task ids; those ids are what
// keeps a notification from being queued twice.
//
// It must not do I/O of its own beyond handing a task to an Enqueuer, and
// must not decide delivery policy (retry schedules live in internal/retry,
// delivery in worker).
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tracing"
)

// TypeDeliver is the one task type: "make attempt N of notification X".
const TypeDeliver = "notify:deliver"

// Queues. First attempts and retries live in separate queues so a backlog of
// retries (a receiver outage ending) never delays fresh notifications.
// Manual redeliveries (rare, someone is waiting) share the first queue.
// There are only two because Asynq's fetch loop costs a Redis round trip per
// queue it tries, and an empty queue is usually tried for nothing: with
// three, the no-op ceiling measured 8,400 tasks/s against 14,000 with one.
const (
	QueueFirst = "notify"
	QueueRetry = "notify_retry"
)

// QueueWeights for the Asynq server of an unsharded installation
// (NOTIFYD_QUEUE_SHARDS=1): fresh work mostly first, retries still make
// progress under sustained load. ShardedWeights is the general form.
var QueueWeights = map[string]int{QueueFirst: 8, QueueRetry: 2}

// namespace makes notification ids derived from (receiver, key) unique to notifyd.
var namespace = uuid.MustParse("6f1b7f0c-8a8e-4c55-9a37-2f1d5b0c9e11")

// NotificationID is the stable id of the notification that receiver gets for
// idempotencyKey: the same inputs give the same id on every call, which is
// what lets a producer retry its own request without creating a duplicate.
func NotificationID(receiverID uuid.UUID, idempotencyKey string) uuid.UUID {
	b := make([]byte, 0, 16+len(idempotencyKey))
	b = append(b, receiverID[:]...)
	b = append(b, idempotencyKey...)
	return uuid.NewSHA1(namespace, b)
}

// Deliver is the task payload. It carries the whole notification so that a
// worker can record a notification it has never seen (the Go client enqueues
// straight to Redis, without touching Postgres).
type Deliver struct {
	ID             uuid.UUID       `json:"id"`
	ReceiverID     uuid.UUID       `json:"receiver_id"`
	EventType      string          `json:"event_type"`
	IdempotencyKey string          `json:"idempotency_key"`
	CallbackURL    string          `json:"callback_url,omitempty"`
	Payload        json.RawMessage `json:"payload"`
	// EnqueuedAt is when the producer handed the notification in; it
	// measures queueing delay. The notification's created_at is Postgres's.
	EnqueuedAt time.Time `json:"enqueued_at"`
	// Attempt is the automatic attempt this task makes (1-based), or 0 for a
	// manual redelivery.
	Attempt int `json:"attempt"`
	// Manual is the manual redelivery number when Attempt is 0.
	Manual int `json:"manual,omitempty"`
	// TraceParent and TraceState are the W3C trace context of the span
	// that queued the task (tracecontext.go), so that its attempt joins the
	// notification's trace. The task's MAC covers them like every field;
	// tasks queued with tracing off, or by an older notifyd, have none.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
	// QueueShards is the shard count (NOTIFYD_QUEUE_SHARDS) of the
	// installation the task is queued in; 0 or 1: the unsharded queues.
	// It is not part of the payload: whoever queues the task sets it from
	// its own setting (Enqueue takes it from a Sharded enqueuer), so a
	// worker schedules a retry on its own shard count, not the producer's.
	QueueShards int `json:"-"`
}

// TaskID names the task for one attempt. Asynq refuses a second task with a
// live id, so the re-drive job can enqueue "attempt N of X" without
// checking whether it is already queued.
func (d *Deliver) TaskID() string {
	if d.Attempt == 0 {
		return d.ID.String() + ":m" + strconv.Itoa(d.Manual)
	}
	return d.ID.String() + ":" + strconv.Itoa(d.Attempt)
}

// Queue is where this attempt belongs: first attempts and manual
// redeliveries in the first queue, later attempts in the retry queue, of
// the receiver's shard when d.QueueShards > 1 (see shards.go).
func (d *Deliver) Queue() string {
	return QueueOf(d.ReceiverID, d.Attempt > 1, d.QueueShards)
}

// MaxRetry is Asynq's retry budget for one task. Asynq's own retries are used
// only when the worker cannot reach its own infrastructure (Postgres, Redis);
// delivery retries are separate tasks counted in Postgres. The budget is
// effectively unlimited so that neither a long database outage nor a long
// run of circuit-breaker deferrals ever makes Asynq archive a task.
const MaxRetry = 1 << 30

// Task builds the Asynq task, sealed with keys (nil: unsigned, for
// development). Retention is zero so that a completed task frees its id at
// once.
func (d *Deliver) Task(keys *taskauth.Keyring, opts ...asynq.Option) (*asynq.Task, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode task %s: %w", d.TaskID(), err)
	}
	b = keys.Seal(TypeDeliver, b)
	base := []asynq.Option{
		asynq.TaskID(d.TaskID()),
		asynq.Queue(d.Queue()),
		asynq.MaxRetry(MaxRetry),
		// Bounds a handler that is stuck for reasons of its own; a delivery
		// itself is bounded far below this.
		asynq.Timeout(5 * time.Minute),
	}
	return asynq.NewTask(TypeDeliver, b, append(base, opts...)...), nil
}

// Decode reads a task payload. It is plain encoding/json: a hand-written
// parser for Task's layout saved 3 to 7 µs per task (a Go benchmark against
// encoding/json, and the README's throughput profile), under 2 % of the
// ~409 µs of CPU a delivered notification costs, and was removed.
func Decode(b []byte) (*Deliver, error) {
	return Open(nil, b)
}

// ErrIDMismatch: the task's id is not the one derived from its receiver and
// idempotency key, so it would record or deliver under a forged id.
var ErrIDMismatch = errors.New("task id does not match its receiver and idempotency key")

// Open checks a task payload's seal with keys (taskauth's errors when it
// fails) and decodes it. Decode is Open without keys.
func Open(keys *taskauth.Keyring, payload []byte) (*Deliver, error) {
	b, err := keys.Open(TypeDeliver, payload)
	if err != nil {
		return nil, fmt.Errorf("open task: %w", err)
	}
	var d Deliver
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode task: %w", err)
	}
	if d.ID == uuid.Nil || d.ReceiverID == uuid.Nil || d.Attempt < 0 {
		return nil, fmt.Errorf("decode task: missing id, receiver or attempt")
	}
	return &d, nil
}

// CheckID refuses a task whose id is not the one derived from its receiver
// and idempotency key: every producer derives it, so a task that differs
// was not written by one.
func (d *Deliver) CheckID() error {
	if NotificationID(d.ReceiverID, d.IdempotencyKey) != d.ID {
		return fmt.Errorf("task %s: %w", d.ID, ErrIDMismatch)
	}
	return nil
}

// Enqueuer is the part of an Asynq client that scheduling needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Schedule queues automatic attempt number attempt of d at due, sealed with
// keys. A task for that attempt already in Redis is not an error: it is
// queued, which is what the caller wants.
func Schedule(ctx context.Context, q Enqueuer, keys *taskauth.Keyring, d Deliver, attempt int, due time.Time) error {
	d.Attempt, d.Manual = attempt, 0
	if _, err := Enqueue(ctx, q, keys, &d, asynq.ProcessAt(due)); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("schedule attempt %d of %s: %w", attempt, d.ID, err)
	}
	return nil
}

// enqueueSpan is built once: an option built per call costs an allocation
// even when tracing is off.
var enqueueSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}

// Enqueue seals d with keys and hands it to q inside a producer span
// (tracing.SpanEnqueue) whose trace context d carries to the worker: every
// producer queues through here, so every attempt joins the trace of what
// queued it. asynq.ErrTaskIDConflict (the task is queued already) is
// returned as is: the caller decides whether that is success.
func Enqueue(ctx context.Context, q Enqueuer, keys *taskauth.Keyring, d *Deliver, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	ctx, span := tracing.Tracer().Start(ctx, tracing.SpanEnqueue, enqueueSpan...)
	defer span.End()
	if d.QueueShards == 0 {
		d.QueueShards = ShardsOf(q)
	}
	d.carryTrace(ctx)
	task, err := d.Task(keys, opts...)
	if err != nil {
		tracing.Fail(span, err)
		return nil, err
	}
	info, err := q.EnqueueContext(ctx, task)
	if span.IsRecording() {
		span.SetAttributes(tracing.NotificationID.String(d.ID.String()), tracing.ReceiverID.String(d.ReceiverID.String()),
			tracing.Attempt.Int(d.Attempt), semconv.MessagingSystemKey.String("asynq"), semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(d.Queue()), semconv.MessagingMessageID(d.TaskID()))
		switch {
		case errors.Is(err, asynq.ErrTaskIDConflict):
			span.SetAttributes(tracing.AlreadyQueued.Bool(true))
		case err != nil:
			tracing.Fail(span, err)
		}
	}
	return info, err
}
