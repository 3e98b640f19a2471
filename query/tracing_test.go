package query

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/internal/tracing/tracingtest"
)

// Every API request but the probes is a server span named by its route
// template, a child of the caller's span when the request carries one,
// with its final status (an error answer included); only 5xx marks it
// failed.
func TestServerSpans(t *testing.T) {
	sr, _ := tracingtest.Record(t)
	a := newTestAPI(t)
	r := a.receiver()
	// A server whose database is gone answers 500.
	broken, err := store.Open(context.Background(), testenv.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	broken.Close()
	brokenSrv := New(broken, a.rdb, a.queue, Config{AdminToken: testAdminToken, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	cases := []struct {
		name, method, path, token, traceparent string
		handler                                http.Handler
		wantName                               string // "": no span
		wantStatus                             int
		wantFailed                             bool
	}{
		{"lookup", "GET", "/v1/notifications/" + uuid.NewString(), r.APIKey, caller, a.srv.Handler(), "GET /v1/notifications/:id", 404, false},
		{"bad token", "GET", "/v1/notifications", "nfy_nonsense", "", a.srv.Handler(), "GET /v1/notifications", 401, false},
		{"database gone", "GET", "/v1/notifications?receiver_id=" + r.ID.String(), testAdminToken, "", brokenSrv.Handler(), "GET /v1/notifications", 500, true},
		{"liveness probe", "GET", "/healthz", "", caller, a.srv.Handler(), "", 200, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(sr.Ended())
			req := benchRequest(c.method, c.path, c.token, "")
			if c.token == "" {
				req.Header.Del("Authorization")
			}
			if c.traceparent != "" {
				req.Header.Set("traceparent", c.traceparent)
			}
			rec := httptest.NewRecorder()
			c.handler.ServeHTTP(rec, req)
			if rec.Code != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.wantStatus, rec.Body)
			}
			var spans []sdktrace.ReadOnlySpan
			for _, s := range sr.Ended()[before:] {
				if s.Name() == c.wantName || s.Name() == c.method+" "+c.path {
					spans = append(spans, s)
				}
			}
			if c.wantName == "" {
				if len(spans) != 0 {
					t.Fatalf("a probe made span %q", spans[0].Name())
				}
				return
			}
			if len(spans) != 1 {
				t.Fatalf("%d spans %q, want 1", len(spans), c.wantName)
			}
			s := spans[0]
			attrs := attribute.NewSet(s.Attributes()...)
			if v, _ := attrs.Value("http.response.status_code"); v.AsInt64() != int64(c.wantStatus) {
				t.Errorf("http.response.status_code %v, want %d", v.AsInt64(), c.wantStatus)
			}
			if v, _ := attrs.Value("http.route"); v.AsString() != c.wantName[len(c.method)+1:] {
				t.Errorf("http.route %q", v.AsString())
			}
			if failed := s.Status().Code == codes.Error; failed != c.wantFailed {
				t.Errorf("span status %v, want failed %v", s.Status(), c.wantFailed)
			}
			if c.traceparent != "" {
				if s.SpanContext().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || s.Parent().SpanID().String() != "b7ad6b7169203331" {
					t.Errorf("span not a child of the caller's: trace %s parent %s", s.SpanContext().TraceID(), s.Parent().SpanID())
				}
			} else if s.Parent().IsValid() {
				t.Errorf("span has parent %s without a traceparent", s.Parent().SpanID())
			}
		})
	}
}
