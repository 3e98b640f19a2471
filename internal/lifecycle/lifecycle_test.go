package lifecycle

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

func TestMake(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	since := at.Add(-120 * time.Hour)
	own := &retry.Policy{MaxAttempts: 3}
	subject := &store.Receiver{ID: uuid.New(), Name: "shop", StatusCallbackURL: "https://shop.example.com/status", Retry: own,
		Health: store.Health{Status: store.ReceiverDisabled, FailingSince: &since, DisabledAt: &at, DisabledReason: "why"}}
	bare := &store.Receiver{ID: uuid.New(), Name: "bare", Health: store.Health{Status: store.ReceiverFailing}}
	operator := &store.Receiver{ID: uuid.New(), Name: "ops", Health: store.Health{Operator: true}}
	events := Events{Defaults: retry.Default()}
	tests := []struct {
		name     string
		subject  *store.Receiver
		operator *store.Receiver
		want     map[uuid.UUID]string // addressee → callback URL override
	}{
		{"operator and own URL", subject, operator, map[uuid.UUID]string{operator.ID: "", subject.ID: subject.StatusCallbackURL}},
		{"own URL only", subject, nil, map[uuid.UUID]string{subject.ID: subject.StatusCallbackURL}},
		{"operator only", bare, operator, map[uuid.UUID]string{operator.ID: ""}},
		{"nobody", bare, nil, map[uuid.UUID]string{}},
		{"nothing about the operator goes to the operator", operator, operator, map[uuid.UUID]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := store.Transition{Event: store.EventDisabled, From: store.ReceiverFailing, Receiver: tt.subject, At: at}
			got := events.Make(tr, tt.operator)
			if len(got) != len(tt.want) {
				t.Fatalf("%d notifications, want %d: %+v", len(got), len(tt.want), got)
			}
			for _, n := range got {
				url, ok := tt.want[n.ReceiverID]
				if !ok || n.CallbackURL != url || n.EventType != store.EventDisabled {
					t.Errorf("unexpected %s to %s (%q)", n.EventType, n.ReceiverID, n.CallbackURL)
				}
				if n.ID != tasks.NotificationID(n.ReceiverID, n.IdempotencyKey) || len(n.IdempotencyKey) > 255 {
					t.Errorf("id %s does not derive from its key %q", n.ID, n.IdempotencyKey)
				}
				wantMax := retry.Default().MaxAttempts
				if n.ReceiverID == subject.ID {
					wantMax = own.MaxAttempts
				}
				if n.MaxAttempts != wantMax {
					t.Errorf("max attempts %d, want the addressee's %d", n.MaxAttempts, wantMax)
				}
				var ev Event
				if err := json.Unmarshal(n.Payload, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.ReceiverID != tt.subject.ID.String() || ev.Status != tt.subject.Status || ev.PreviousStatus != store.ReceiverFailing ||
					!ev.OccurredAt.Equal(at) {
					t.Errorf("payload %+v", ev)
				}
			}
			again := events.Make(tr, tt.operator)
			for i := range got {
				if got[i].ID != again[i].ID {
					t.Errorf("the same transition made a different id: %s, %s", got[i].ID, again[i].ID)
				}
			}
		})
	}
}

func TestIsOwnEvent(t *testing.T) {
	t.Parallel()
	r := &store.Receiver{StatusCallbackURL: "https://shop.example.com/status"}
	tests := []struct {
		r         *store.Receiver
		eventType string
		url       string
		want      bool
	}{
		{r, "receiver.disabled", "https://shop.example.com/status", true},
		{r, "trade.paid", "https://shop.example.com/status", false},
		{r, "receiver.disabled", "", false},
		{r, "receiver.disabled", "https://elsewhere.example.com/", false},
		{&store.Receiver{}, "receiver.disabled", "", false},
	}
	for _, tt := range tests {
		if got := IsOwnEvent(tt.r, tt.eventType, tt.url); got != tt.want {
			t.Errorf("IsOwnEvent(%q, %q, %q) = %v", tt.r.StatusCallbackURL, tt.eventType, tt.url, got)
		}
	}
}
