package worker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tracing/tracingtest"
)

// BenchmarkAttempt is one HTTP attempt to a receiver on loopback that
// answers 200 at once: envelope signing, request, response, classification.
// It is the worker's hot path below the queue and Postgres.
func BenchmarkAttempt(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	d := newDeliverer(netguard.Policy{AllowPrivate: true}, testUserAgent)
	req := testRequest(srv.URL, 5*time.Second)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := d.attempt(ctx, req); res.Outcome != store.OutcomeSuccess {
			b.Fatalf("attempt: %+v", res)
		}
	}
}

// BenchmarkAttemptTraced is BenchmarkAttempt with tracing on: every span
// sampled and handed to a batch processor whose exporter discards it, so
// the figure is the spans' own cost, not an exporter's.
func BenchmarkAttemptTraced(b *testing.B) {
	tracingtest.Install(b, sdktrace.WithBatcher(discard{}))
	BenchmarkAttempt(b)
}

// discard is a span exporter that drops what it is given.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }
