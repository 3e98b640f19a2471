package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestNotifyReportsIdempotencyConflict: while the first notification's task
// is in Redis (no worker runs here), the same key again with the same
// content, however spaced, is the same notification, and with another
// payload or event type it is ErrIdempotencyConflict, a *ConflictError with
// both hashes, returned with the existing id. Nothing new is queued.
func TestNotifyReportsIdempotencyConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRelayFixture(t, true)
	first := Notification{ReceiverID: f.active.String(), EventType: "trade.paid", IdempotencyKey: "order-1", Payload: json.RawMessage(`{"amount":1}`)}
	id, err := f.client.Notify(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, eventType, payload string
		conflict, typeDiffers    bool
	}{
		{"same content", "trade.paid", `{"amount":1}`, false, false},
		{"same JSON, other white space", "trade.paid", "{ \"amount\": 1 }\n", false, false},
		{"other payload", "trade.paid", `{"amount":2}`, true, false},
		{"other event type", "trade.refunded", `{"amount":1}`, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := first
			n.EventType, n.Payload = tc.eventType, json.RawMessage(tc.payload)
			got, err := f.client.Notify(ctx, n)
			if got != id {
				t.Errorf("Notify returned id %q, want the existing %s", got, id)
			}
			var ce *ConflictError
			if !tc.conflict {
				if err != nil {
					t.Fatalf("Notify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrIdempotencyConflict) || !errors.As(err, &ce) {
				t.Fatalf("Notify = %v, want a *ConflictError matching ErrIdempotencyConflict", err)
			}
			if ce.ID != id || !strings.HasPrefix(ce.QueuedHash, "sha256:") || ce.QueuedHash == ce.RejectedHash && !tc.typeDiffers ||
				ce.TypeDiffers != tc.typeDiffers || !strings.Contains(err.Error(), ce.QueuedHash) {
				t.Errorf("ConflictError = %+v (%v)", ce, err)
			}
		})
	}
	if p := f.pending(t); len(p) != 1 || string(p[0].Payload) != `{"amount":1}` {
		t.Errorf("queued %d tasks, want the first one alone", len(p))
	}
}

// TestRelayKillsRowsThatConflict: two outbox rows with one key and other
// payloads; the first is the notification, the second is marked dead with
// the reason, not sent.
func TestRelayKillsRowsThatConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRelayFixture(t, true)
	n := validNotification(f.active, "order-7")
	f.enqueue(t, n)
	n.Payload = json.RawMessage(`{"amount_cents":2}`)
	f.enqueue(t, n)
	if got, err := f.relay.relayBatch(ctx, DefaultOutboxTable); err != nil || got != 2 {
		t.Fatalf("relayBatch = %d, %v", got, err)
	}
	var lastErr string
	if err := f.pool.QueryRow(ctx, `SELECT last_error FROM notifyd_outbox WHERE dead_at IS NOT NULL`).Scan(&lastErr); err != nil {
		t.Fatalf("no dead row: %v", err)
	}
	if !strings.Contains(lastErr, "idempotency key already used") || countRows(t, f.pool, "sent_at IS NOT NULL") != 1 || len(f.pending(t)) != 1 {
		t.Errorf("dead row's last_error %q, %d rows sent, %d queued", lastErr, countRows(t, f.pool, "sent_at IS NOT NULL"), len(f.pending(t)))
	}
}
