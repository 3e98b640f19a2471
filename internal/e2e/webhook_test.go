package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/query/webhook"
)

// webhookReceiver is a receiver written the way the webhook package's
// documentation tells Go receivers to: webhook.Handler around a function.
type webhookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	events   []*webhook.Event
	rejected []error
}

func newWebhookReceiver(t *testing.T, secret string) *webhookReceiver {
	t.Helper()
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	wr := &webhookReceiver{}
	wr.Server = httptest.NewServer(webhook.Handler(v, func(_ context.Context, e *webhook.Event) error {
		wr.mu.Lock()
		defer wr.mu.Unlock()
		wr.events = append(wr.events, e)
		return nil
	}, webhook.WithErrorLog(func(_ *http.Request, err error) {
		wr.mu.Lock()
		defer wr.mu.Unlock()
		wr.rejected = append(wr.rejected, err)
	})))
	t.Cleanup(wr.Close)
	return wr
}

func (wr *webhookReceiver) got() ([]*webhook.Event, []error) {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return append([]*webhook.Event(nil), wr.events...), append([]error(nil), wr.rejected...)
}

func TestWebhookHandlerAcceptsRealDelivery(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	// The receiver needs its secret before it can verify, and notifyd needs
	// the receiver's URL to create it: point a placeholder at the handler.
	var handler http.Handler
	var mu sync.Mutex
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := handler
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	r := s.receiver(front.URL, nil)
	wr := newWebhookReceiver(t, r.SigningSecret)
	mu.Lock()
	handler = wr.Config.Handler
	mu.Unlock()

	id := s.send(r.ID, "order-webhook-1", map[string]any{"amount": 42, "currency": "CNY"})
	n := s.waitStatus(id, store.StatusDelivered, 10*time.Second)

	events, rejected := wr.got()
	if len(rejected) != 0 {
		t.Fatalf("webhook.Handler rejected a real delivery: %v", rejected)
	}
	if len(events) != 1 {
		t.Fatalf("handler got %d events, want 1", len(events))
	}
	e := events[0]
	if e.ID != id || e.Type != "trade.paid" || e.ReceiverID != r.ID || e.IdempotencyKey != "order-webhook-1" ||
		e.Attempt != 1 || !e.CreatedAt.Equal(n.CreatedAt) {
		t.Errorf("event = %+v; notification %+v", e, n)
	}
	var data map[string]any
	if err := json.Unmarshal(e.Data, &data); err != nil || data["amount"] != 42.0 || data["currency"] != "CNY" {
		t.Errorf("data = %s (%v)", e.Data, err)
	}
	as := s.attempts(id)
	if len(as) != 1 || as[0].StatusCode != http.StatusNoContent || as[0].Outcome != store.OutcomeSuccess {
		t.Errorf("attempts = %+v, want one 204 success", as)
	}

	// A manual redelivery arrives as the same event (same ID: the handler's
	// deduplication key) with Attempt 0.
	if code, raw := s.call("POST", "/v1/notifications/"+id+"/redeliver", r.APIKey, nil, nil); code != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s", code, raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(events) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		events, rejected = wr.got()
	}
	if len(events) != 2 || len(rejected) != 0 {
		t.Fatalf("after redeliver: %d events, rejections %v", len(events), rejected)
	}
	if again := events[1]; again.ID != id || again.Attempt != 0 || string(again.Data) != string(e.Data) || !again.CreatedAt.Equal(e.CreatedAt) {
		t.Errorf("redelivered event = %+v, first %+v", again, e)
	}
}

func TestWebhookHandlerRejectsWrongSecretAndNotifydRecordsIt(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	wrong, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	wr := newWebhookReceiver(t, wrong) // a receiver deployed with the wrong secret
	r := s.receiver(wr.URL, map[string]any{"retry": map[string]any{"max_attempts": 1}})

	id := s.send(r.ID, "order-webhook-2", map[string]any{"amount": 1})
	s.waitStatus(id, store.StatusFailed, 10*time.Second)

	events, rejected := wr.got()
	if len(events) != 0 {
		t.Errorf("handler ran for an unverifiable callback: %+v", events)
	}
	if len(rejected) != 1 || !strings.Contains(rejected[0].Error(), "signature") {
		t.Errorf("rejections = %v, want one signature error", rejected)
	}
	// The 400 and its reason are on record for the receiver to find.
	as := s.attempts(id)
	if len(as) != 1 || as[0].StatusCode != http.StatusBadRequest || !strings.Contains(as[0].ResponseBody, "no matching webhook signature") {
		t.Errorf("attempts = %+v, want one 400 naming the signature", as)
	}
}
