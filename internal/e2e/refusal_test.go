package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/notifier"
)

// TestRefusedTargetsTeach: a callback address the policy refuses is named
// with its kind and how to allow it, in every place a user meets it —
// receiver create and update, HTTP ingest, the Go client and a worker's
// recorded attempt — and no internal package name shows.
func TestRefusedTargetsTeach(t *testing.T) {
	s := newStack(t, withTargets(netguard.Policy{Hint: netguard.ServerHint}))
	const setting = "set NOTIFYD_ALLOW_PRIVATE_TARGETS=true"
	refused := func(what string, code int, raw []byte, wantKind string) {
		t.Helper()
		var body struct {
			Error struct{ Code, Field, Message string }
		}
		_ = json.Unmarshal(raw, &body)
		m := body.Error.Message
		if code != http.StatusUnprocessableEntity || body.Error.Field != "callback_url" || !strings.Contains(m, wantKind+" address; "+setting) ||
			strings.Contains(m, "netguard") {
			t.Errorf("%s: %d %s, want 422 for callback_url naming a %s address and the setting", what, code, raw, wantKind)
		}
	}
	code, raw := s.call(http.MethodPost, "/v1/receivers", adminToken, map[string]any{"name": "m", "callback_url": "http://127.0.0.1:9000/notify"}, nil)
	refused("create on 127.0.0.1", code, raw, "127.0.0.1 is a loopback")
	code, raw = s.call(http.MethodPost, "/v1/receivers", adminToken, map[string]any{"name": "m", "callback_url": "http://localhost:9000/notify"}, nil)
	refused("create on localhost", code, raw, "localhost is a loopback")

	r := s.receiver("https://hooks.example.com/notify", nil)
	code, raw = s.call(http.MethodPatch, "/v1/receivers/"+r.ID, adminToken, map[string]any{"callback_url": "http://10.0.0.5/notify"}, nil)
	refused("update to 10.0.0.5", code, raw, "10.0.0.5 is a private")
	code, raw = s.call(http.MethodPost, "/v1/notifications", producerToken, map[string]any{"receiver_id": r.ID, "event_type": "trade.paid",
		"idempotency_key": "k1", "callback_url": "http://169.254.169.254/latest", "payload": map[string]int{"a": 1}}, nil)
	refused("ingest to 169.254.169.254", code, raw, "169.254.169.254 is a link-local")

	// The Go client's hint is its own option.
	plain := notifier.NewFromRedisClient(s.rdb)
	defer plain.Close()
	_, err := plain.Notify(context.Background(), notifier.Notification{ReceiverID: r.ID, EventType: "trade.paid", IdempotencyKey: "k2",
		CallbackURL: "http://127.0.0.1:9000/notify", Payload: json.RawMessage(`{}`)})
	var ve *notifier.ValidationError
	if !errors.As(err, &ve) || ve.Field != "callback_url" ||
		!strings.Contains(ve.Message, "127.0.0.1 is a loopback address; notifier.WithAllowPrivateTargets(true) allows it") {
		t.Errorf("Go client: %v, want a ValidationError naming the address and the option", err)
	}

	// A producer that allows it still meets the workers' policy, recorded
	// on the attempt the receiver can read.
	id, err := s.notifier.Notify(context.Background(), notifier.Notification{ReceiverID: r.ID, EventType: "trade.paid", IdempotencyKey: "k3",
		CallbackURL: "http://127.0.0.1:9000/notify", Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	var msg string
	for deadline := time.Now().Add(30 * time.Second); msg == ""; time.Sleep(50 * time.Millisecond) {
		if as := s.attempts(id); len(as) > 0 {
			msg = as[0].Error
		} else if time.Now().After(deadline) {
			t.Fatal("no attempt recorded")
		}
	}
	if !strings.Contains(msg, "127.0.0.1 is a loopback address; "+setting) || strings.Contains(msg, "netguard") {
		t.Errorf("recorded attempt error %q, want the address's kind and the setting", msg)
	}
}
