package worker

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/tracing"
)

// The worker's spans: one per task (traceDelivery), the HTTP attempt in it
// (traceAttempt), and the wait for the attempt's record (traceRecord). The
// record is written by a batch shared with other deliveries, which belong
// to other traces, so the batch's span (traceBatch) cannot be a child of
// any one of them: it is a root span linked to every record span it wrote.

// Span options are built once: an option built per call costs an
// allocation even when tracing is off.
var (
	deliverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	attemptSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// traceDelivery starts the span of one task's processing, a child of the
// span that queued it (the trace context the task carries).
func traceDelivery(ctx context.Context, d *tasks.Deliver) (context.Context, trace.Span) {
	ctx, span := tracing.Tracer().Start(d.TraceContext(ctx), tracing.SpanDeliver, deliverSpan...)
	if span.IsRecording() {
		queue, _ := asynq.GetQueueName(ctx)
		span.SetAttributes(tracing.NotificationID.String(d.ID.String()), tracing.ReceiverID.String(d.ReceiverID.String()),
			tracing.Attempt.Int(d.Attempt), semconv.MessagingSystemKey.String("asynq"), semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(queue), semconv.MessagingMessageID(d.TaskID()))
	}
	return ctx, span
}

// endDelivery ends the task's span with what ProcessTask returned: a
// deferral (the receiver busy, its circuit open) is not a failure.
func endDelivery(span trace.Span, err error) {
	var rl *retryLater
	switch {
	case err == nil:
	case errors.As(err, &rl):
		span.SetAttributes(tracing.Deferred.String(rl.err.Error()))
	default:
		tracing.Fail(span, err)
	}
	span.End()
}

// traceAttempt starts the HTTP client span of an attempt. Only the
// callback's scheme, host and port are recorded: its path and query can
// hold a receiver's secret (a token in the URL).
func traceAttempt(ctx context.Context, r *attemptRequest) (context.Context, trace.Span) {
	ctx, span := tracing.Tracer().Start(ctx, tracing.SpanAttempt, attemptSpan...)
	if span.IsRecording() {
		span.SetAttributes(semconv.HTTPRequestMethodPost, tracing.Attempt.Int(r.Attempt))
		if u, err := url.Parse(r.URL); err == nil {
			span.SetAttributes(semconv.URLScheme(u.Scheme), semconv.ServerAddress(u.Hostname()))
			if port, err := strconv.Atoi(u.Port()); err == nil {
				span.SetAttributes(semconv.ServerPort(port))
			}
		}
	}
	return ctx, span
}

// endAttempt ends an attempt's span with its outcome.
func endAttempt(span trace.Span, res *attemptResult) {
	if span.IsRecording() {
		span.SetAttributes(tracing.Outcome.String(res.Outcome))
		if res.StatusCode != 0 {
			span.SetAttributes(semconv.HTTPResponseStatusCode(res.StatusCode))
		}
		if res.Outcome != store.OutcomeSuccess {
			errType := res.Outcome
			if res.StatusCode != 0 {
				errType = strconv.Itoa(res.StatusCode)
			}
			span.SetAttributes(semconv.ErrorTypeKey.String(errType))
			span.SetStatus(codes.Error, res.Error)
		}
	}
	span.End()
}

// injectTrace writes the attempt's trace context into the request to the
// receiver (traceparent, by OTEL_PROPAGATORS), so a receiver that traces
// can join the trace. With tracing off the propagator writes nothing.
func injectTrace(ctx context.Context, h map[string][]string) {
	otel.GetTextMapPropagator().Inject(ctx, propagation.HeaderCarrier(h))
}

// traceRecord starts the span of a delivery waiting for its record.
func traceRecord(ctx context.Context, rec *store.AttemptRecord) (context.Context, trace.Span) {
	ctx, span := tracing.Tracer().Start(ctx, tracing.SpanRecord)
	if span.IsRecording() {
		span.SetAttributes(tracing.NotificationID.String(rec.NotificationID.String()), tracing.Attempt.Int(rec.AttemptNo))
		if rec.NewStatus != "" {
			span.SetAttributes(tracing.Status.String(rec.NewStatus))
		}
	}
	return ctx, span
}

// endSpan ends span, failed when err is set.
func endSpan(span trace.Span, err error) {
	if err != nil {
		tracing.Fail(span, err)
	}
	span.End()
}

// traceBatch starts the span of one batched write, linked to the record
// spans that recorded (it is a no-op span when none did).
func traceBatch(batch []*pendingRecord) trace.Span {
	var links []trace.Link
	for _, p := range batch {
		if p.span.IsValid() {
			links = append(links, trace.Link{SpanContext: p.span})
		}
	}
	if len(links) == 0 {
		return trace.SpanFromContext(context.Background())
	}
	_, span := tracing.Tracer().Start(context.Background(), tracing.SpanRecordBatch,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...))
	span.SetAttributes(semconv.DBSystemNamePostgreSQL, semconv.DBOperationBatchSize(len(batch)),
		semconv.DBQuerySummary("record attempts"))
	return span
}
