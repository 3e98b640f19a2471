package tasks

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/trace"

	"github.com/notifyd/notifyd/internal/taskauth"
)

// captureQueue is an Enqueuer that keeps what it is given (pure logic:
// what Enqueue writes into the task).
type captureQueue struct{ got []*asynq.Task }

func (q *captureQueue) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	q.got = append(q.got, t)
	return &asynq.TaskInfo{ID: "x"}, nil
}

func testKeys(t *testing.T) *taskauth.Keyring {
	t.Helper()
	keys, err := taskauth.Parse("k1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32))))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// A remote span context as a producer's traced process would pass it.
func producerSpan(t *testing.T) trace.SpanContext {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true})
}

// Enqueue writes the caller's trace context into the sealed task, and the
// worker's side reads back the same span context as a remote parent. (No
// tracer provider is set here: OpenTelemetry's no-op spans pass their
// parent's context on, as a process with tracing off does.)
func TestEnqueueCarriesTraceContext(t *testing.T) {
	keys := testKeys(t)
	sc := producerSpan(t)
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)
	q := &captureQueue{}
	d := sampleTasks()[0]
	if _, err := Enqueue(ctx, q, keys, &d); err != nil {
		t.Fatal(err)
	}
	got, err := Open(keys, q.got[0].Payload())
	if err != nil {
		t.Fatal(err)
	}
	if got.TraceParent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || got.TraceState != "vendor=abc" {
		t.Fatalf("task carries traceparent %q tracestate %q", got.TraceParent, got.TraceState)
	}
	parent := trace.SpanContextFromContext(got.TraceContext(context.Background()))
	if !parent.Equal(sc) {
		t.Fatalf("worker reads parent %+v, want %+v", parent, sc)
	}
}

// The trace context is inside the MAC: altering it in Redis makes the
// task refused like any other alteration.
func TestTraceContextIsSealed(t *testing.T) {
	keys := testKeys(t)
	q := &captureQueue{}
	d := sampleTasks()[0]
	if _, err := Enqueue(trace.ContextWithRemoteSpanContext(context.Background(), producerSpan(t)), q, keys, &d); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Replace(q.got[0].Payload(), []byte("00f067aa0ba902b7"), []byte("00f067aa0ba902b8"), 1)
	if _, err := Open(keys, payload); !errors.Is(err, taskauth.ErrBadMAC) {
		t.Fatalf("altered trace context: got %v, want ErrBadMAC", err)
	}
}

// Tasks without trace context (tracing off, or queued by a notifyd that
// predates tracing) decode as before and give the worker no parent; a
// malformed one is ignored the same way.
func TestTasksWithoutTraceContext(t *testing.T) {
	old := `{"id":"4d7f6c1e-1111-4222-8333-944455556666","receiver_id":"0b9c4a2e-aaaa-4bbb-8ccc-ddddeeeeffff",` +
		`"event_type":"trade.paid","idempotency_key":"order-1","payload":{"amount":100},"enqueued_at":"2026-11-22T01:02:03Z","attempt":1}`
	cases := map[string]string{
		"older notifyd": old,
		"malformed":     strings.TrimSuffix(old, "}") + `,"traceparent":"00-zz-yy-01"}`,
		"all zero":      strings.TrimSuffix(old, "}") + `,"traceparent":"00-00000000000000000000000000000000-0000000000000000-01"}`,
	}
	for name, payload := range cases {
		t.Run(name, func(t *testing.T) {
			d, err := Decode([]byte(payload))
			if err != nil {
				t.Fatal(err)
			}
			if d.Attempt != 1 || d.EventType != "trade.paid" {
				t.Fatalf("decoded %+v", d)
			}
			if sc := trace.SpanContextFromContext(d.TraceContext(context.Background())); sc.IsValid() {
				t.Fatalf("a parent from nothing: %+v", sc)
			}
		})
	}
	// And a task queued with no trace in its context carries none.
	q := &captureQueue{}
	d := sampleTasks()[0]
	if _, err := Enqueue(context.Background(), q, nil, &d); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(q.got[0].Payload(), []byte("trace")) {
		t.Fatalf("untraced task carries trace fields: %s", q.got[0].Payload())
	}
}

// A retry queued where nothing is traced (a worker with tracing off) keeps
// the trace context its notification came with; one queued inside a span
// carries that span instead.
func TestRetryKeepsOrReplacesTraceContext(t *testing.T) {
	d := sampleTasks()[0]
	d.TraceParent, d.TraceState = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=abc"
	q := &captureQueue{}
	if err := Schedule(context.Background(), q, nil, d, 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	kept, err := Decode(q.got[0].Payload())
	if err != nil {
		t.Fatal(err)
	}
	if kept.TraceParent != d.TraceParent || kept.TraceState != d.TraceState || kept.Attempt != 2 {
		t.Fatalf("retry without a span: %+v", kept)
	}
	tid, _ := trace.TraceIDFromHex("11111111111111111111111111111111")
	sid, _ := trace.SpanIDFromHex("2222222222222222")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	if err := Schedule(ctx, q, nil, d, 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	replaced, err := Decode(q.got[1].Payload())
	if err != nil {
		t.Fatal(err)
	}
	if replaced.TraceParent != "00-11111111111111111111111111111111-2222222222222222-00" || replaced.TraceState != "" {
		t.Fatalf("retry inside a span: traceparent %q tracestate %q", replaced.TraceParent, replaced.TraceState)
	}
}
