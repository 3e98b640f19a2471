package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/notifyd/notifyd/internal/buildinfo"
)

// Shutdown flushes the spans still buffered and stops exporting.
type Shutdown func(context.Context) error

// Setup turns tracing on for this process when an OTLP endpoint is
// configured (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_EXPORTER_OTLP_ENDPOINT), and leaves OpenTelemetry's no-op provider
// in place otherwise. process names the notifyd subcommand (a resource
// attribute). OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none turn it
// off too.
//
// The rest is OpenTelemetry's standard variables, read by its SDK and
// exporter: headers, timeout, compression and TLS of the exporter
// (OTEL_EXPORTER_OTLP_*), sampling (OTEL_TRACES_SAMPLER, default
// parentbased_always_on), batching (OTEL_BSP_*), the service name and
// resource attributes (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), and
// OTEL_PROPAGATORS (tracecontext, baggage or none; default both) for the
// API's incoming requests and the requests to receivers.
//
// The Shutdown it returns is never nil; call it on the way out, so the
// last spans are sent.
func Setup(ctx context.Context, process string, logger *slog.Logger) (Shutdown, error) {
	noop := func(context.Context) error { return nil }
	on, err := enabled()
	if err != nil || !on {
		return noop, err
	}
	props, err := propagators(os.Getenv("OTEL_PROPAGATORS"))
	if err != nil {
		return noop, err
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return noop, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("notifyd"), semconv.ServiceVersion(buildinfo.Version),
			attribute.String("notifyd.process", process)),
		resource.WithHost(), resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if res == nil {
		return noop, fmt.Errorf("tracing: resource: %w", err)
	}
	if err != nil {
		logger.Warn("tracing: some resource attributes could not be detected", "err", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: exporting spans failed", "err", err)
	}))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(props)
	logger.Info("tracing: exporting spans over OTLP/HTTP", "endpoint", endpointForLog())
	return tp.Shutdown, nil
}

// enabled reports whether the environment asks for spans to be exported.
func enabled() (bool, error) {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false, nil
	}
	switch exp := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER"))); exp {
	case "none":
		return false, nil
	case "", "otlp":
	default:
		return false, fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q: notifyd exports traces over OTLP only (otlp, or none)", exp)
	}
	if os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return false, nil
	}
	proto := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		// Sending OTLP/HTTP to a gRPC port fails on every export; say so at
		// start instead.
		return false, fmt.Errorf("tracing: OTLP protocol %q: notifyd exports http/protobuf only (collector port 4318)", proto)
	}
	return true, nil
}

// propagators reads OTEL_PROPAGATORS: which trace headers the API reads
// from requests and the worker writes to receivers.
func propagators(spec string) (propagation.TextMapPropagator, error) {
	if strings.TrimSpace(spec) == "" {
		spec = "tracecontext,baggage"
	}
	var ps []propagation.TextMapPropagator
	for _, name := range strings.Split(spec, ",") {
		switch strings.TrimSpace(name) {
		case "tracecontext":
			ps = append(ps, propagation.TraceContext{})
		case "baggage":
			ps = append(ps, propagation.Baggage{})
		case "none":
			return propagation.NewCompositeTextMapPropagator(), nil
		default:
			return nil, fmt.Errorf("tracing: OTEL_PROPAGATORS: %q is not supported (tracecontext, baggage, none)", strings.TrimSpace(name))
		}
	}
	return propagation.NewCompositeTextMapPropagator(ps...), nil
}

// endpointForLog is the configured endpoint without credentials or query.
func endpointForLog() string {
	e := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if e == "" {
		e = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	u, err := url.Parse(e)
	if err != nil {
		return "(unparsable)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}
