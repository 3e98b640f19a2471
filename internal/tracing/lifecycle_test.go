package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/tracing"
	"github.com/notifyd/notifyd/internal/tracing/tracingtest"
	"github.com/notifyd/notifyd/notifier"
)

// record keeps every span ended from now on, and gives the test a tracer
// of its own, the producer's.
func record(t *testing.T) (*tracetest.SpanRecorder, trace.Tracer) {
	sr, tp := tracingtest.Record(t)
	return sr, tp.Tracer("producer")
}

// flakyReceiver fails its first callback with 500 and accepts the rest,
// keeping the traceparent header of each.
type flakyReceiver struct {
	*httptest.Server
	mu           sync.Mutex
	traceparents []string
}

func newFlakyReceiver(t *testing.T) *flakyReceiver {
	fr := &flakyReceiver{}
	fr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fr.mu.Lock()
		fr.traceparents = append(fr.traceparents, r.Header.Get("traceparent"))
		n := len(fr.traceparents)
		fr.mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(fr.Close)
	return fr
}

func (fr *flakyReceiver) seen() []string {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return append([]string(nil), fr.traceparents...)
}

// An HTTP-ingested notification whose first attempt fails and whose retry
// succeeds is one trace, under the producer's span, with the parent of
// every span as the README's Tracing section draws it; the batched record
// writes link to the record spans; the receiver got each attempt's span as
// its traceparent.
func TestHTTPIngestedNotificationIsOneTrace(t *testing.T) {
	sr, producer := record(t)
	s := notifydtest.Start(t)
	rcv := newFlakyReceiver(t)
	r := s.CreateReceiver(rcv.URL, nil)

	ctx, checkout := producer.Start(context.Background(), "checkout")
	body, _ := json.Marshal(map[string]any{"receiver_id": r.ID, "event_type": "trade.paid",
		"idempotency_key": "order-1", "payload": map[string]any{"amount_cents": 1999}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/v1/notifications", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apitest.ProducerToken)
	req.Header.Set("Content-Type", "application/json")
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var accepted struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&accepted); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	checkout.End()
	s.WaitStatus(60*time.Second, "delivered", accepted.ID)

	tr := waitTrace(t, sr, checkout.SpanContext().TraceID(), accepted.ID, 2)
	server := tr.one(t, "POST /v1/notifications", checkout.SpanContext().SpanID(), trace.SpanKindServer)
	tr.wantAttr(t, server, attribute.Int("http.response.status_code", http.StatusAccepted), attribute.String("http.route", "/v1/notifications"),
		tracing.NotificationID.String(accepted.ID))
	parent := server.SpanContext().SpanID()
	var posts []sdktrace.ReadOnlySpan
	for attempt, want := range []struct {
		code    int
		outcome string
		status  string
	}{{500, "failure", "pending"}, {200, "success", "delivered"}} {
		enqueue := tr.one(t, tracing.SpanEnqueue, parent, trace.SpanKindProducer)
		tr.wantAttr(t, enqueue, tracing.Attempt.Int(attempt+1), tracing.NotificationID.String(accepted.ID))
		deliver := tr.one(t, tracing.SpanDeliver, enqueue.SpanContext().SpanID(), trace.SpanKindConsumer)
		tr.wantAttr(t, deliver, tracing.Attempt.Int(attempt+1), attribute.String("messaging.destination.name", map[int]string{0: "notify", 1: "notify_retry"}[attempt]))
		post := tr.one(t, tracing.SpanAttempt, deliver.SpanContext().SpanID(), trace.SpanKindClient)
		tr.wantAttr(t, post, attribute.Int("http.response.status_code", want.code), tracing.Outcome.String(want.outcome),
			attribute.String("server.address", "127.0.0.1"))
		if (post.Status().Code == codes.Error) != (want.outcome != "success") {
			t.Errorf("attempt %d: span status %v for outcome %s", attempt+1, post.Status(), want.outcome)
		}
		rec := tr.one(t, tracing.SpanRecord, deliver.SpanContext().SpanID(), trace.SpanKindInternal)
		tr.wantAttr(t, rec, tracing.Status.String(want.status))
		if !linkedFromBatch(sr, rec.SpanContext()) {
			t.Errorf("attempt %d: no %s span links to its record span", attempt+1, tracing.SpanRecordBatch)
		}
		posts = append(posts, post)
		parent = deliver.SpanContext().SpanID() // the retry is queued by this attempt
	}
	seen := rcv.seen()
	if len(seen) != 2 {
		t.Fatalf("receiver got %d callbacks, want 2", len(seen))
	}
	for i, post := range posts {
		want := "00-" + post.SpanContext().TraceID().String() + "-" + post.SpanContext().SpanID().String() + "-01"
		if seen[i] != want {
			t.Errorf("callback %d: traceparent %q, want %q (its attempt's span)", i+1, seen[i], want)
		}
	}
}

// A notification sent with the Go client joins the trace of the producer's
// span around Notify.
func TestGoClientNotificationJoinsProducerTrace(t *testing.T) {
	sr, producer := record(t)
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, http.StatusOK)
	r := s.CreateReceiver(cb.URL, nil)
	client := notifier.NewFromRedisClient(s.Redis, notifier.WithAllowPrivateTargets(true))

	ctx, pay := producer.Start(context.Background(), "pay")
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		id, err = client.Notify(ctx, notifier.Notification{ReceiverID: r.ID, EventType: "trade.paid",
			IdempotencyKey: "order-2", Payload: json.RawMessage(`{"amount_cents":500}`)})
		if err == nil {
			break
		}
		// The registry the Go client reads learns a new receiver within a
		// sync interval.
		if !errors.Is(err, notifier.ErrUnknownReceiver) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	pay.End()
	// Not in Postgres before its first attempt's record: wait for the
	// attempt's span, which ends after it.
	tr := waitTrace(t, sr, pay.SpanContext().TraceID(), id, 1)
	s.WaitStatus(10*time.Second, "delivered", id)
	enqueue := tr.one(t, tracing.SpanEnqueue, pay.SpanContext().SpanID(), trace.SpanKindProducer)
	deliver := tr.one(t, tracing.SpanDeliver, enqueue.SpanContext().SpanID(), trace.SpanKindConsumer)
	tr.one(t, tracing.SpanAttempt, deliver.SpanContext().SpanID(), trace.SpanKindClient)
	rec := tr.one(t, tracing.SpanRecord, deliver.SpanContext().SpanID(), trace.SpanKindInternal)
	// The Go client's notification is created by its first attempt's record.
	tr.wantAttr(t, rec, tracing.Status.String("delivered"), tracing.NotificationID.String(id))
}

// spanTrace is the ended spans of one trace.
type spanTrace []sdktrace.ReadOnlySpan

// waitTrace waits until the trace has the given number of ended deliver
// spans of notification id (a deliver span ends after the task is
// acknowledged, a moment after the status is visible) and returns it.
func waitTrace(t *testing.T, sr *tracetest.SpanRecorder, id trace.TraceID, notification string, delivers int) spanTrace {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var tr spanTrace
		n := 0
		for _, s := range sr.Ended() {
			if s.SpanContext().TraceID() != id {
				continue
			}
			tr = append(tr, s)
			if s.Name() == tracing.SpanDeliver && hasAttr(s, tracing.NotificationID.String(notification)) {
				n++
			}
		}
		if n >= delivers {
			return tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: %d ended %s spans after 60 s, want %d; spans: %v", id, n, tracing.SpanDeliver, delivers, tr.names())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// one is the only span named name whose parent is parent; it must be of kind.
func (tr spanTrace) one(t *testing.T, name string, parent trace.SpanID, kind trace.SpanKind) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range tr {
		if s.Name() == name && s.Parent().SpanID() == parent {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans %q with parent %s, want 1; the trace: %v", len(found), name, parent, tr.names())
	}
	if found[0].SpanKind() != kind {
		t.Errorf("span %q is a %v span, want %v", name, found[0].SpanKind(), kind)
	}
	return found[0]
}

func (tr spanTrace) wantAttr(t *testing.T, s sdktrace.ReadOnlySpan, want ...attribute.KeyValue) {
	t.Helper()
	for _, kv := range want {
		if !hasAttr(s, kv) {
			t.Errorf("span %q: no attribute %s=%s; has %v", s.Name(), kv.Key, kv.Value.String(), s.Attributes())
		}
	}
}

func (tr spanTrace) names() []string {
	var out []string
	for _, s := range tr {
		out = append(out, s.Name()+" ("+s.SpanContext().SpanID().String()+" < "+s.Parent().SpanID().String()+")")
	}
	return out
}

func hasAttr(s sdktrace.ReadOnlySpan, want attribute.KeyValue) bool {
	for _, kv := range s.Attributes() {
		if kv == want {
			return true
		}
	}
	return false
}

// linkedFromBatch reports whether a batched record write links to sc.
func linkedFromBatch(sr *tracetest.SpanRecorder, sc trace.SpanContext) bool {
	for _, s := range sr.Ended() {
		if s.Name() != tracing.SpanRecordBatch {
			continue
		}
		for _, l := range s.Links() {
			if l.SpanContext.Equal(sc) {
				return true
			}
		}
	}
	return false
}
