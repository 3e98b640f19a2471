package query

import (
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/notifyd/notifyd/internal/tracing"
)

// serverSpan is built once: an option built per request costs an
// allocation even when tracing is off.
var serverSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}

// trace serves each request in an HTTP server span named by its route
// template ("POST /v1/notifications"), a child of the caller's span when
// the request carries trace headers (OTEL_PROPAGATORS). It is the outermost
// middleware, so the span covers authentication and rate limiting and
// sees the final status: it writes an error answer itself (the error
// handler does nothing for an answer already written). Probes are not
// traced: a span every few seconds per probe says nothing.
func (s *Server) trace(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		route := c.Path()
		if route == "/healthz" || route == "/readyz" {
			return next(c)
		}
		req := c.Request()
		ctx := otel.GetTextMapPropagator().Extract(req.Context(), propagation.HeaderCarrier(req.Header))
		ctx, span := tracing.Tracer().Start(ctx, req.Method, serverSpan...)
		defer span.End()
		if !span.IsRecording() {
			if span.SpanContext().IsValid() {
				c.SetRequest(req.WithContext(ctx)) // a sampled-out trace still reaches the tasks
			}
			return next(c)
		}
		if route != "" {
			span.SetName(req.Method + " " + route)
			span.SetAttributes(semconv.HTTPRoute(route))
		}
		span.SetAttributes(semconv.HTTPRequestMethodKey.String(req.Method), semconv.URLPath(req.URL.Path),
			semconv.URLScheme(c.Scheme()), semconv.ClientAddress(c.RealIP()))
		c.SetRequest(req.WithContext(ctx))
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= 500 {
			// 4xx is the client's error, not the server span's (semconv).
			span.SetStatus(codes.Error, "")
			if err != nil {
				span.RecordError(err)
			}
		}
		return err
	}
}
