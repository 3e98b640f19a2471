package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/notifyd/notifyd/internal/store"
)

func TestDeliveredOnceFromGoClientAndHTTP(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	rs := newReceiverServer(t, statusResponder(200))
	r := s.receiver(rs.URL, nil)

	goID := s.notifyGo(r.ID, "order-go")
	httpID := s.send(r.ID, "order-http", map[string]any{"amount": 42})
	for _, id := range []string{goID, httpID} {
		n := s.waitStatus(id, store.StatusDelivered, 10*time.Second)
		if n.Attempts != 1 || n.DeliveredAt == nil {
			t.Errorf("%s: %+v", id, n)
		}
		as := s.attempts(id)
		if len(as) != 1 || as[0].StatusCode != 200 || as[0].Outcome != store.OutcomeSuccess || as[0].ResponseBody != "answer 200" || as[0].Duration < 0 {
			t.Errorf("%s attempts: %+v", id, as)
		}
	}
	hits := rs.Hits()
	if len(hits) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(hits))
	}
	wh, err := standardwebhooks.NewWebhook(r.SigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		if err := wh.Verify(h.body, h.header); err != nil {
			t.Errorf("official Standard Webhooks library rejects our signature: %v", err)
		}
		var env struct {
			ID, Type, ReceiverID, IdempotencyKey string
			Data                                 json.RawMessage
		}
		if err := json.Unmarshal(h.body, &env); err != nil {
			t.Fatal(err)
		}
		if h.header.Get("webhook-id") != env.ID || (env.ID != goID && env.ID != httpID) {
			t.Errorf("webhook-id %q, envelope id %q", h.header.Get("webhook-id"), env.ID)
		}
		if h.header.Get("Notifyd-Attempt") != "1" || h.header.Get("Content-Type") != "application/json" {
			t.Errorf("headers: %v", h.header)
		}
	}
}

func TestRetriesThenSucceedsOnSchedule(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	rs := newReceiverServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
	})
	r := s.receiver(rs.URL, map[string]any{"retry": map[string]any{"intervals": []string{"1s", "2s", "2s"}}})
	id := s.send(r.ID, "order-1", map[string]any{"x": 1})
	n := s.waitStatus(id, store.StatusDelivered, 15*time.Second)
	if n.Attempts != 3 {
		t.Fatalf("attempts = %d, want 3", n.Attempts)
	}
	hits := rs.Hits()
	if len(hits) != 3 {
		t.Fatalf("receiver got %d requests, want 3", len(hits))
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second} {
		got := hits[i+1].at.Sub(hits[i].at)
		if got < want-50*time.Millisecond || got > want+time.Second {
			t.Errorf("gap %d = %s, want %s (±1 s)", i+1, got, want)
		}
	}
}
