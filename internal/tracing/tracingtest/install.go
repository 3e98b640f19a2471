package tracingtest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Install makes a tracer provider with opts, and W3C propagation,
// OpenTelemetry's global ones until the test ends, as tracing.Setup does
// in a process; then the previous ones come back. Tests that install one
// must not run in parallel with each other.
func Install(tb testing.TB, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	tb.Helper()
	tp := sdktrace.NewTracerProvider(opts...)
	tb.Cleanup(func() { tp.Shutdown(context.Background()) })
	KeepGlobals(tb)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp
}

// KeepGlobals puts OpenTelemetry's global provider, propagator and error
// handler back as they are now when the test ends, for a test whose code
// under test replaces them (tracing.Setup does).
func KeepGlobals(tb testing.TB) {
	tp, prop, eh := otel.GetTracerProvider(), otel.GetTextMapPropagator(), otel.GetErrorHandler()
	tb.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetTextMapPropagator(prop)
		otel.SetErrorHandler(eh)
	})
}

// Record installs a provider that samples every span and keeps each one
// that ends in the recorder it returns.
func Record(tb testing.TB) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	tb.Helper()
	sr := tracetest.NewSpanRecorder()
	return sr, Install(tb, sdktrace.WithSpanProcessor(sr))
}
