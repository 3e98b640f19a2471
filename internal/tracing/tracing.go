// Package tracing is notifyd's OpenTelemetry tracing: the tracer every
// package starts its spans with, the span names and attributes they share,
// and the process set-up (setup.go) that exports spans over OTLP when an
// endpoint is configured.
//
// Spans are always started, through the global TracerProvider. While
// tracing is off (the default) that is OpenTelemetry's no-op provider,
// whose spans cost a context value and nothing else; callers build
// attributes only for spans that record (span.IsRecording). A producer's
// process that uses notifier has its own global provider, so a Notify call
// joins the producer's trace.
//
// It must not decide anything about delivery, and must not know the task
// layout (internal/tasks carries the trace context in a task).
package tracing

import (
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/notifyd/notifyd/internal/buildinfo"
)

// Scope is the instrumentation scope of notifyd's spans.
const Scope = "github.com/notifyd/notifyd"

// Span names. A notification's life is one trace: the API's server span
// (or the producer's own span around Notify) → SpanEnqueue → SpanDeliver
// → the HTTP attempt (a client span named "POST") and SpanRecord; a retry
// is a SpanEnqueue under the SpanDeliver that scheduled it.
const (
	// SpanEnqueue: a task handed to Asynq (producer span).
	SpanEnqueue = "notifyd.enqueue"
	// SpanDeliver: a worker processing one task (consumer span).
	SpanDeliver = "notifyd.deliver"
	// SpanAttempt: the HTTP request to the receiver (client span), named
	// by its method as OpenTelemetry's HTTP conventions ask.
	SpanAttempt = "POST"
	// SpanRecord: a delivery waiting for its attempt to be written.
	SpanRecord = "notifyd.record"
	// SpanRecordBatch: one batched write of attempts to Postgres, linked
	// to the SpanRecord of every attempt in it.
	SpanRecordBatch = "notifyd.record.batch"
)

// Attributes of notifyd's own (high-cardinality attributes are fine on
// spans, unlike on metrics).
const (
	NotificationID = attribute.Key("notifyd.notification.id")
	ReceiverID     = attribute.Key("notifyd.receiver.id")
	// Attempt is the automatic attempt number (1-based), or 0 for a manual
	// redelivery.
	Attempt = attribute.Key("notifyd.attempt")
	// Outcome is the attempt's outcome as recorded (success, failure,
	// timeout, gone, blocked).
	Outcome = attribute.Key("notifyd.outcome")
	// Status is the notification's status once the attempt is recorded.
	Status = attribute.Key("notifyd.status")
	// Deferred says why a task was handed back without an attempt.
	Deferred = attribute.Key("notifyd.deferred")
	// AlreadyQueued: the enqueue found the task in Redis already (the
	// notification is on its way; not an error).
	AlreadyQueued = attribute.Key("notifyd.already_queued")
)

// scopedTracer is the tracer of one TracerProvider.
type scopedTracer struct {
	provider trace.TracerProvider
	tracer   trace.Tracer
}

var current atomic.Pointer[scopedTracer]

// Tracer is notifyd's tracer from the global TracerProvider. It follows
// the provider when it is replaced (a tracer obtained once would keep the
// first provider set); looking it up is an atomic load.
func Tracer() trace.Tracer {
	tp := otel.GetTracerProvider()
	if c := current.Load(); c != nil && c.provider == tp {
		return c.tracer
	}
	c := &scopedTracer{provider: tp, tracer: tp.Tracer(Scope, trace.WithInstrumentationVersion(buildinfo.Version))}
	current.Store(c)
	return c.tracer
}

// Fail marks span as failed with err.
func Fail(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}
