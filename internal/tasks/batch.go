package tasks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tracing"
)

// TypeBatch is a task carrying several notifications' attempts that share
// a queue: "make attempt N of each of these". One task per notification
// made Asynq's per-task Redis work the largest cost of a delivery (issue
// 14); a batch pays it once for many. A batch of one is never built: a lone
// notification stays a TypeDeliver task, which costs no more than before.
const TypeBatch = "notify:batch"

// Batch bounds. MaxBatchMembers keeps a batch's fan-out within what one
// worker runs at once; MaxBatchBytes keeps one task's payload (and the
// Redis command carrying it) small next to Redis's limits.
const (
	MaxBatchMembers = 100
	MaxBatchBytes   = 1 << 20
)

// Batch errors callers branch on.
var (
	ErrBatchEmpty     = errors.New("batch has no members")
	ErrBatchTooLarge  = errors.New("batch exceeds its bounds")
	ErrBatchQueue     = errors.New("batch members belong to different queues")
	ErrBatchMalformed = errors.New("batch member is missing its id, receiver or attempt")
)

// batchPayload is the JSON sealed in a batch task.
type batchPayload struct {
	Members []*Deliver `json:"members"`
}

// NewBatchID names a batch task: random, since a batch is not a unit
// anything else refers to (every member keeps its own notification id).
func NewBatchID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "b:" + hex.EncodeToString(b[:])
}

// BatchTask builds the Asynq task for members (2 or more, one queue), with
// id from NewBatchID, sealed with keys so that the MAC covers every member.
func BatchTask(keys *taskauth.Keyring, id string, members []*Deliver, opts ...asynq.Option) (*asynq.Task, error) {
	if err := checkMembers(members); err != nil {
		return nil, fmt.Errorf("build batch %s: %w", id, err)
	}
	b, err := json.Marshal(batchPayload{Members: members})
	if err != nil {
		return nil, fmt.Errorf("encode batch %s: %w", id, err)
	}
	if len(b) > MaxBatchBytes {
		return nil, fmt.Errorf("build batch %s: %d bytes: %w", id, len(b), ErrBatchTooLarge)
	}
	b = keys.Seal(TypeBatch, b)
	base := []asynq.Option{
		asynq.TaskID(id),
		asynq.Queue(members[0].Queue()),
		asynq.MaxRetry(MaxRetry),
		asynq.Timeout(5 * time.Minute),
	}
	return asynq.NewTask(TypeBatch, b, append(base, opts...)...), nil
}

// OpenBatch checks a batch payload's seal with keys (taskauth's errors when
// it fails) and decodes its members. The caller still runs CheckID on each.
func OpenBatch(keys *taskauth.Keyring, payload []byte) ([]*Deliver, error) {
	if len(payload) > MaxBatchBytes+sealOverhead {
		return nil, fmt.Errorf("open batch: %w", ErrBatchTooLarge)
	}
	b, err := keys.Open(TypeBatch, payload)
	if err != nil {
		return nil, fmt.Errorf("open batch: %w", err)
	}
	var p batchPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	if err := checkMembers(p.Members); err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	return p.Members, nil
}

// DecodeBatch is OpenBatch without keys.
func DecodeBatch(b []byte) ([]*Deliver, error) { return OpenBatch(nil, b) }

// checkMembers enforces a batch's shape: bounded, complete members, one queue.
func checkMembers(members []*Deliver) error {
	switch {
	case len(members) == 0:
		return ErrBatchEmpty
	case len(members) > MaxBatchMembers:
		return fmt.Errorf("%d members: %w", len(members), ErrBatchTooLarge)
	}
	queue := ""
	for i, d := range members {
		if d == nil || d.ID == uuid.Nil || d.ReceiverID == uuid.Nil || d.Attempt < 0 {
			return fmt.Errorf("member %d: %w", i, ErrBatchMalformed)
		}
		if i == 0 {
			queue = d.Queue()
		} else if d.Queue() != queue {
			return fmt.Errorf("member %d: %w", i, ErrBatchQueue)
		}
	}
	return nil
}

// sealOverhead bounds what a seal adds to a payload (prefix, key id, MAC).
const sealOverhead = 256

// EncodedSize estimates the bytes d adds to a batch payload, for splitting
// a group of members into batches under MaxBatchBytes.
func (d *Deliver) EncodedSize() int {
	return 400 + len(d.EventType) + len(d.IdempotencyKey) + len(d.CallbackURL) + 2*len(d.Payload) +
		len(d.TraceParent) + len(d.TraceState)
}

// TraceEnqueue starts d's producer span (tracing.SpanEnqueue) in ctx and
// stores its context in d, as Enqueue does, for producers that queue d as
// part of a batch; finish ends the span with the member's outcome.
func TraceEnqueue(ctx context.Context, d *Deliver) (finish func(alreadyQueued bool, err error)) {
	ctx, span := tracing.Tracer().Start(ctx, tracing.SpanEnqueue, enqueueSpan...)
	d.carryTrace(ctx)
	return func(alreadyQueued bool, err error) {
		if span.IsRecording() {
			span.SetAttributes(tracing.NotificationID.String(d.ID.String()), tracing.ReceiverID.String(d.ReceiverID.String()),
				tracing.Attempt.Int(d.Attempt), semconv.MessagingSystemKey.String("asynq"), semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName(d.Queue()), semconv.MessagingMessageID(d.TaskID()),
				tracing.AlreadyQueued.Bool(alreadyQueued))
			if err != nil {
				tracing.Fail(span, err)
			}
		}
		span.End()
	}
}
