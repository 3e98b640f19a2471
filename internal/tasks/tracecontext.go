package tasks

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// w3c writes and reads a task's trace context. Tasks always use the W3C
// format, whatever the process's OTEL_PROPAGATORS say about HTTP headers:
// it is notifyd's own wire format between its processes.
var w3c propagation.TraceContext

// traceCarrier is the task's two trace fields as a propagation carrier.
type traceCarrier struct{ d *Deliver }

func (c traceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.d.TraceParent
	case "tracestate":
		return c.d.TraceState
	}
	return ""
}

func (c traceCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.d.TraceParent = value
	case "tracestate":
		c.d.TraceState = value
	}
}

func (c traceCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// carryTrace stores the span context of ctx in d. Without one (nothing
// traced here) d keeps what it carries: a retry queued by a worker with
// tracing off still continues the trace of the producer that traced it.
func (d *Deliver) carryTrace(ctx context.Context) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	d.TraceParent, d.TraceState = "", ""
	w3c.Inject(ctx, traceCarrier{d})
}

// TraceContext is ctx with the span context d carries as the remote
// parent of what the worker does with it. A task without one, or with a
// malformed one, leaves ctx as it is: the attempt starts a trace of its own.
func (d *Deliver) TraceContext(ctx context.Context) context.Context {
	if d.TraceParent == "" {
		return ctx
	}
	return w3c.Extract(ctx, traceCarrier{d})
}
