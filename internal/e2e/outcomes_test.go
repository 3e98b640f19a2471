package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/notifier"
	"github.com/notifyd/notifyd/worker"
)

// TestFailureOutcomes covers the ways a delivery ends without success.
func TestFailureOutcomes(t *testing.T) {
	t.Parallel()
	// Two timeouts in a row open the circuit: a short cool-down lets the
	// third attempt come within the test's wait.
	s := newStack(t, withTimeout(300*time.Millisecond), withWorker(func(w *worker.Config) {
		w.Breaker = worker.BreakerConfig{Cooldown: time.Second}
	}))
	cases := []struct {
		name         string
		respond      func(int, http.ResponseWriter, *http.Request)
		wantAttempts int
		wantOutcome  string
		wantCode     int
	}{
		{"always 500 fails after max attempts", statusResponder(500), 3, store.OutcomeFailure, 500},
		{"410 stops at once", statusResponder(410), 1, store.OutcomeGone, 410},
		{"redirect is a failure", func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, 3, store.OutcomeFailure, 302},
		{"slow receiver times out", func(_ int, w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, 3, store.OutcomeTimeout, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rs := newReceiverServer(t, tc.respond)
			r := s.receiver(rs.URL, nil)
			id := s.send(r.ID, "order", map[string]int{"n": 1})
			n := s.waitStatus(id, store.StatusFailed, 20*time.Second)
			if n.Attempts != tc.wantAttempts || n.NextAttemptAt != nil || n.LastError == nil {
				t.Errorf("notification: %+v", n)
			}
			as := s.attempts(id)
			if len(as) != tc.wantAttempts {
				t.Fatalf("%d attempts recorded, want %d", len(as), tc.wantAttempts)
			}
			for _, a := range as {
				if a.Outcome != tc.wantOutcome || a.StatusCode != tc.wantCode || a.Error == "" {
					t.Errorf("attempt: %+v", a)
				}
			}
			// The receiver saw exactly what Postgres recorded (redirect target never hit).
			if got := len(rs.Hits()); got != tc.wantAttempts {
				t.Errorf("receiver saw %d requests, want %d", got, tc.wantAttempts)
			}
		})
	}
}

func TestSameIdempotencyKeyIsOneNotification(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	rs := newReceiverServer(t, statusResponder(200))
	r := s.receiver(rs.URL, nil)

	a := s.notifyGo(r.ID, "order-7")
	b := s.notifyGo(r.ID, "order-7")
	c := s.send(r.ID, "order-7", map[string]int{"amount": 100})
	d := s.send(r.ID, "order-7", map[string]int{"amount": 100})
	if a != b || b != c || c != d {
		t.Fatalf("ids differ: %s %s %s %s", a, b, c, d)
	}
	s.waitStatus(a, store.StatusDelivered, 10*time.Second)
	// Sending again after delivery still yields the same notification, no new request.
	if again := s.notifyGo(r.ID, "order-7"); again != a {
		t.Fatalf("id after delivery %s, want %s", again, a)
	}
	time.Sleep(500 * time.Millisecond)
	if got := len(rs.Hits()); got != 1 {
		t.Fatalf("receiver got %d requests, want 1", got)
	}
	var count int
	if err := s.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM notifications`).Scan(&count); err != nil || count != 1 {
		t.Fatalf("notifications = %d (%v), want 1", count, err)
	}
	// The same key with a different payload is a conflict, not a silent replay.
	code, raw := s.call("POST", "/v1/notifications", producerToken, map[string]any{
		"receiver_id": r.ID, "event_type": "trade.paid", "idempotency_key": "order-7", "payload": map[string]int{"amount": 999},
	}, nil)
	if code != http.StatusConflict {
		t.Fatalf("conflicting replay: %d %s", code, raw)
	}
}

func TestSuccessRulesAndSchedules(t *testing.T) {
	t.Parallel()
	s := newStack(t)

	t.Run("body must match", func(t *testing.T) {
		t.Parallel()
		rs := newReceiverServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				w.Write([]byte("ok")) // 200 but not the agreed word
				return
			}
			w.Write([]byte("success\n"))
		})
		r := s.receiver(rs.URL, map[string]any{"success_body": "success", "retry": map[string]any{"intervals": []string{"1s"}}})
		id := s.send(r.ID, "k", 1)
		n := s.waitStatus(id, store.StatusDelivered, 10*time.Second)
		as := s.attempts(id)
		if n.Attempts != 2 || len(as) != 2 || as[0].Outcome != store.OutcomeFailure || as[0].StatusCode != 200 {
			t.Fatalf("attempts: %+v", as)
		}
	})
	t.Run("receiver overrides max attempts and backoff", func(t *testing.T) {
		t.Parallel()
		rs := newReceiverServer(t, statusResponder(503))
		r := s.receiver(rs.URL, map[string]any{"retry": map[string]any{"max_attempts": 4, "base": "200ms", "factor": 2, "jitter": 0}})
		id := s.send(r.ID, "k", 1)
		n := s.waitStatus(id, store.StatusFailed, 15*time.Second)
		if n.Attempts != 4 || n.MaxAttempts != 4 {
			t.Fatalf("notification: %+v", n)
		}
		hits := rs.Hits()
		for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
			if got := hits[i+1].at.Sub(hits[i].at); got < want-50*time.Millisecond || got > want+time.Second {
				t.Errorf("gap %d = %s, want %s", i+1, got, want)
			}
		}
	})
	t.Run("explicit interval list sets the attempt count", func(t *testing.T) {
		t.Parallel()
		rs := newReceiverServer(t, statusResponder(500))
		r := s.receiver(rs.URL, map[string]any{"retry": map[string]any{"intervals": []string{"300ms", "300ms", "600ms", "300ms"}}})
		id := s.send(r.ID, "k", 1)
		n := s.waitStatus(id, store.StatusFailed, 15*time.Second)
		if n.Attempts != 5 || n.MaxAttempts != 5 || len(rs.Hits()) != 5 {
			t.Fatalf("notification: %+v, hits %d", n, len(rs.Hits()))
		}
		hits := rs.Hits()
		if gap := hits[3].at.Sub(hits[2].at); gap < 550*time.Millisecond || gap > 1600*time.Millisecond {
			t.Errorf("third interval = %s, want 600ms", gap)
		}
	})
}

func TestGoClientTypedErrors(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.receiver("https://example.com/cb", nil)
	ctx := context.Background()
	valid := notifier.Notification{ReceiverID: r.ID, EventType: "trade.paid", IdempotencyKey: "k", Payload: json.RawMessage(`{}`)}
	cases := []struct {
		name   string
		mutate func(*notifier.Notification)
		field  string
		target error
	}{
		{"bad receiver id", func(n *notifier.Notification) { n.ReceiverID = "nope" }, "receiver_id", nil},
		{"unknown receiver", func(n *notifier.Notification) { n.ReceiverID = "00000000-0000-0000-0000-000000000001" }, "", notifier.ErrUnknownReceiver},
		{"empty event type", func(n *notifier.Notification) { n.EventType = "" }, "event_type", nil},
		{"empty key", func(n *notifier.Notification) { n.IdempotencyKey = "" }, "idempotency_key", nil},
		{"invalid json", func(n *notifier.Notification) { n.Payload = json.RawMessage(`{`) }, "payload", nil},
		{"relative callback", func(n *notifier.Notification) { n.CallbackURL = "/cb" }, "callback_url", nil},
		{"ftp callback", func(n *notifier.Notification) { n.CallbackURL = "ftp://example.com/" }, "callback_url", nil},
	}
	for _, tc := range cases {
		n := valid
		tc.mutate(&n)
		_, err := s.notifier.Notify(ctx, n)
		if tc.field != "" {
			var ve *notifier.ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field || !errors.Is(err, notifier.ErrInvalidNotification) {
				t.Errorf("%s: err = %v, want validation error on %s", tc.name, err, tc.field)
			}
			continue
		}
		if !errors.Is(err, tc.target) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.target)
		}
	}
	// A deactivated receiver is refused once the client's cache expires.
	fresh := notifier.NewFromRedisClient(s.rdb)
	defer fresh.Close()
	if code, raw := s.call("PATCH", "/v1/receivers/"+r.ID, adminToken, map[string]any{"active": false}, nil); code != 200 {
		t.Fatalf("deactivate: %d %s", code, raw)
	}
	if _, err := fresh.Notify(ctx, valid); !errors.Is(err, notifier.ErrReceiverInactive) {
		t.Errorf("inactive receiver: %v", err)
	}
}
