package tracing

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/notifyd/notifyd/internal/tracing/tracingtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// otelVars are the variables Setup and OpenTelemetry's SDK read; each test
// starts with all of them empty.
var otelVars = []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_PROPAGATORS", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER"}

func cleanEnv(t *testing.T, set map[string]string) {
	for _, k := range otelVars {
		t.Setenv(k, set[k])
	}
}

// Without an OTLP endpoint, or when the standard variables turn it off,
// nothing is installed: spans stay OpenTelemetry's no-op ones. Settings
// notifyd cannot honour refuse to start.
func TestSetupFromEnvironment(t *testing.T) {
	const endpoint = "http://127.0.0.1:4318"
	cases := []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{"nothing set", nil, false},
		{"only a protocol", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, false},
		{"SDK disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "true"}, false},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "none"}, false},
		{"another exporter", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "zipkin"}, true},
		{"gRPC", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true},
		{"gRPC for traces", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, true},
		{"unknown propagator", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_PROPAGATORS": "tracecontext,b3"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cleanEnv(t, c.env)
			tracingtest.KeepGlobals(t)
			before := otel.GetTracerProvider()
			shutdown, err := Setup(context.Background(), "worker", quiet)
			if (err != nil) != c.wantErr {
				t.Fatalf("Setup: err %v, want error %v", err, c.wantErr)
			}
			if shutdown == nil || shutdown(context.Background()) != nil {
				t.Fatal("Setup must return a Shutdown that can be called")
			}
			if otel.GetTracerProvider() != before {
				t.Fatal("Setup installed a provider although tracing is off")
			}
			_, span := Tracer().Start(context.Background(), "x")
			if span.IsRecording() {
				t.Fatal("a span records with tracing off")
			}
		})
	}
}

func TestPropagators(t *testing.T) {
	cases := map[string][]string{
		"":                      {"traceparent", "tracestate", "baggage"},
		"tracecontext":          {"traceparent", "tracestate"},
		" baggage ":             {"baggage"},
		"tracecontext,baggage":  {"traceparent", "tracestate", "baggage"},
		"none":                  nil,
		"tracecontext,none":     nil,
		"tracecontext, baggage": {"traceparent", "tracestate", "baggage"},
	}
	for spec, want := range cases {
		p, err := propagators(spec)
		if err != nil {
			t.Fatalf("%q: %v", spec, err)
		}
		got := p.Fields()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("%q: fields %v, want %v", spec, got, want)
		}
	}
	if _, err := propagators("jaeger"); err == nil {
		t.Error("jaeger: want an error")
	}
}

// With an endpoint set, spans go over OTLP/HTTP to it, with notifyd's
// resource, and the Shutdown Setup returns sends what is still buffered
// (the batch processor would wait up to 5 s otherwise).
func TestSetupExportsOverOTLP(t *testing.T) {
	for _, c := range []struct{ name, variable, suffix, wantPath string }{
		{"base endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "", "/v1/traces"},
		{"traces endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/collect/traces", "/collect/traces"},
	} {
		t.Run(c.name, func(t *testing.T) {
			col := tracingtest.NewCollector(t)
			cleanEnv(t, map[string]string{c.variable: col.URL + c.suffix, "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test"})
			tracingtest.KeepGlobals(t)
			shutdown, err := Setup(context.Background(), "worker", quiet)
			if err != nil {
				t.Fatal(err)
			}
			ctx, parent := Tracer().Start(context.Background(), "parent")
			_, child := Tracer().Start(ctx, "child")
			child.End()
			parent.End()
			if !slices.Contains(otel.GetTextMapPropagator().Fields(), "traceparent") {
				t.Error("no W3C propagator installed")
			}
			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if paths := col.Paths(); len(paths) != 1 || paths[0] != c.wantPath {
				t.Fatalf("collector got exports at %v, want one at %s", paths, c.wantPath)
			}
			spans := col.Spans()
			if len(spans) != 2 {
				t.Fatalf("%d spans exported, want 2", len(spans))
			}
			for k, want := range map[string]string{"service.name": "notifyd", "notifyd.process": "worker", "deployment.environment.name": "test"} {
				if got := spans[0].Resource[k]; got != want {
					t.Errorf("resource %s = %q, want %q", k, got, want)
				}
			}
			byName := map[string]tracingtest.Span{}
			for _, s := range spans {
				byName[s.Name] = s
				if s.Scope != Scope {
					t.Errorf("span %s: scope %q, want %q", s.Name, s.Scope, Scope)
				}
			}
			if !bytes.Equal(byName["child"].ParentSpanId, byName["parent"].SpanId) {
				t.Error("child's parent is not parent")
			}
		})
	}
}
