package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/notifier"
)

// conflicts reads idempotency_conflicts_total for where it was detected.
func conflicts(detectedBy string) float64 {
	return counterValue(metrics.IdempotencyConflicts, detectedBy)
}

// counterValue reads one counter of v.
func counterValue(v *prometheus.CounterVec, label string) float64 {
	var m dto.Metric
	if err := v.WithLabelValues(label).Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestIdempotencyConflictOnEveryPath: an idempotency key used again with
// another payload is refused over HTTP (409 naming the field and both
// hashes) and, through the Go client after the first notification's task
// has left Redis (where Notify cannot compare), by the worker: the task is
// dropped, counted and logged, the receiver gets nothing more, and the
// recorded notification keeps its first payload. (Notify's own refusal while
// the task is queued: notifier.TestNotifyReportsIdempotencyConflict.)
func TestIdempotencyConflictOnEveryPath(t *testing.T) {
	s := newStack(t)
	cb := apitest.NewCallbackServer(t, http.StatusOK)
	r := s.receiver(cb.URL, nil)
	ctx := context.Background()

	httpBefore := conflicts("http")
	id := s.send(r.ID, "order-http", map[string]int{"amount": 1})
	var body struct {
		Error struct{ Code, Field, Message string }
	}
	code, raw := s.call(http.MethodPost, "/v1/notifications", producerToken, map[string]any{
		"receiver_id": r.ID, "event_type": "trade.paid", "idempotency_key": "order-http", "payload": map[string]int{"amount": 2},
	}, nil)
	if err := json.Unmarshal(raw, &body); err != nil || code != http.StatusConflict || body.Error.Code != "idempotency_conflict" ||
		body.Error.Field != "idempotency_key" || !containsAll(body.Error.Message, id, "sha256:") {
		t.Fatalf("HTTP conflict answered %d %s", code, raw)
	}
	if got := conflicts("http") - httpBefore; got != 1 {
		t.Errorf("idempotency_conflicts_total{detected_by=http} rose by %v, want 1", got)
	}

	// Wait until the Go client's notification's first task is done, so
	// that Redis no longer holds it.
	goID, err := s.notifier.Notify(ctx, notifier.Notification{ReceiverID: r.ID, EventType: "trade.paid",
		IdempotencyKey: "order-go", Payload: json.RawMessage(`{"amount":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	s.waitStatus(goID, "delivered", 30*time.Second)
	hits := cb.Hits()
	workerBefore := conflicts("worker")
	again, err := s.notifier.Notify(ctx, notifier.Notification{ReceiverID: r.ID, EventType: "trade.paid",
		IdempotencyKey: "order-go", Payload: json.RawMessage(`{"amount":2}`)})
	if err != nil || again != goID {
		t.Fatalf("Notify after the first task left Redis = %s, %v; want %s and nil (only the worker can tell)", again, err, goID)
	}
	for deadline := time.Now().Add(30 * time.Second); conflicts("worker")-workerBefore < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not count the conflict")
		}
	}
	if got := conflicts("worker") - workerBefore; got != 1 {
		t.Errorf("idempotency_conflicts_total{detected_by=worker} rose by %v, want 1", got)
	}
	n := s.waitStatus(goID, "delivered", time.Second)
	if string(n.Payload) != `{"amount":1}` || n.Attempts != 1 || cb.Hits() != hits {
		t.Errorf("after the conflict: payload %s, %d attempts, %d callbacks (want %d): the first notification must stand alone",
			n.Payload, n.Attempts, cb.Hits(), hits)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
