package e2e

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/store"
)

// switchable answers 500 until healthy is set, then 200.
func switchable(healthy *atomic.Bool) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		if healthy.Load() {
			w.WriteHeader(200)
			_, _ = w.Write([]byte("ok"))
			return
		}
		w.WriteHeader(500)
	}
}

type apiAttempt struct {
	Attempt    int    `json:"attempt"`
	StatusCode int    `json:"status_code"`
	Outcome    string `json:"outcome"`
	Manual     bool   `json:"manual"`
}

// TestRedeliverFailedToHealthyReceiver: a notification fails for good, the
// receiver recovers, the receiver asks for a redelivery with its own key;
// it is delivered by a manual attempt that leaves the automatic count alone.
func TestRedeliverFailedToHealthyReceiver(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	var healthy atomic.Bool
	rs := newReceiverServer(t, switchable(&healthy))
	r := s.receiver(rs.URL, nil)
	id := s.send(r.ID, "order-1", map[string]any{"amount": 1})
	failed := s.waitStatus(id, store.StatusFailed, 15*time.Second)
	if failed.Attempts != 3 {
		t.Fatalf("failed after %d attempts, want 3", failed.Attempts)
	}

	healthy.Store(true)
	var out struct {
		ID         string `json:"id"`
		Redelivery int    `json:"redelivery"`
	}
	if code, raw := s.call("POST", "/v1/notifications/"+id+"/redeliver", r.APIKey, nil, &out); code != http.StatusAccepted || out.Redelivery != 1 || out.ID != id {
		t.Fatalf("redeliver: %d %s", code, raw)
	}
	n := s.waitStatus(id, store.StatusDelivered, 10*time.Second)
	if n.Attempts != 3 || n.MaxAttempts != 3 || n.DeliveredAt == nil || n.NextAttemptAt != nil {
		t.Fatalf("after redelivery: %+v", n)
	}
	var attempts struct {
		Data []apiAttempt `json:"data"`
	}
	if code, raw := s.call("GET", "/v1/notifications/"+id+"/attempts", r.APIKey, nil, &attempts); code != http.StatusOK {
		t.Fatalf("attempts: %d %s", code, raw)
	}
	if len(attempts.Data) != 4 {
		t.Fatalf("attempts: %+v, want 3 automatic and 1 manual", attempts.Data)
	}
	for i, a := range attempts.Data[:3] {
		if a.Attempt != i+1 || a.Manual || a.StatusCode != 500 {
			t.Fatalf("automatic attempt %d: %+v", i+1, a)
		}
	}
	if m := attempts.Data[3]; m.Attempt != -1 || !m.Manual || m.StatusCode != 200 || m.Outcome != store.OutcomeSuccess {
		t.Fatalf("manual attempt: %+v", m)
	}
	if hits := rs.Hits(); len(hits) != 4 || hits[3].header.Get("webhook-id") != id {
		t.Fatalf("receiver got %d requests, want 4", len(hits))
	}
}

// TestRecoverFailedInWindow: only the receiver's failed notifications
// created inside the window get another attempt; the second call finds
// nothing to do.
func TestRecoverFailedInWindow(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	var healthy atomic.Bool
	rs := newReceiverServer(t, switchable(&healthy))
	r := s.receiver(rs.URL, nil)
	// Three notifications make 9 failed attempts: fewer than the 10 that
	// open the worker's circuit breaker for the receiver by default.
	ids := []string{s.send(r.ID, "in-1", 1), s.send(r.ID, "in-2", 2), s.send(r.ID, "old", 3)}
	for _, id := range ids {
		s.waitStatus(id, store.StatusFailed, 15*time.Second)
	}
	// Move one out of the window.
	if _, err := s.store.Pool().Exec(t.Context(),
		`UPDATE notifications SET created_at = created_at - interval '3 days' WHERE id = ANY($1::uuid[])`, ids[2:]); err != nil {
		t.Fatal(err)
	}
	healthy.Store(true)
	body := map[string]string{"since": time.Now().Add(-48 * time.Hour).Format(time.RFC3339)}
	var out struct {
		Recovered int `json:"recovered"`
	}
	if code, raw := s.call("POST", "/v1/receivers/"+r.ID+"/recover", r.APIKey, body, &out); code != http.StatusAccepted || out.Recovered != 2 {
		t.Fatalf("recover: %d %s", code, raw)
	}
	for _, id := range ids[:2] {
		n := s.waitStatus(id, store.StatusDelivered, 10*time.Second)
		if n.Attempts != 4 || n.MaxAttempts != 4 {
			t.Fatalf("recovered %s: %+v", id, n)
		}
		as := s.attempts(id)
		if last := as[len(as)-1]; last.AttemptNo != 4 || last.Outcome != store.OutcomeSuccess {
			t.Fatalf("recovered %s: last attempt %+v", id, last)
		}
	}
	if code, raw := s.call("POST", "/v1/receivers/"+r.ID+"/recover", r.APIKey, body, &out); code != http.StatusAccepted || out.Recovered != 0 {
		t.Fatalf("second recover: %d %s", code, raw)
	}
	// Nothing else happened to the one outside the window.
	time.Sleep(500 * time.Millisecond)
	for _, id := range ids[2:] {
		if n := s.waitStatus(id, store.StatusFailed, time.Second); n.Attempts != 3 {
			t.Fatalf("outside the window %s: %+v", id, n)
		}
	}
	if hits := len(rs.Hits()); hits != 3*3+2 {
		t.Fatalf("receiver got %d requests, want %d", hits, 3*3+2)
	}
}
