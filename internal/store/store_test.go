package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	_, pool := testenv.Pool(t)
	return store.New(pool)
}

func newReceiver(t *testing.T, s *store.Store) *store.Receiver {
	t.Helper()
	r := &store.Receiver{ID: uuid.New(), Name: "shop", CallbackURL: "https://example.com/cb", SigningSecret: "whsec_x"}
	if err := s.CreateReceiver(context.Background(), r, store.HashAPIKey(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	return r
}

func newNotification(r *store.Receiver, key string) *store.NewNotification {
	return &store.NewNotification{ID: tasks.NotificationID(r.ID, key), ReceiverID: r.ID, EventType: "trade.paid", IdempotencyKey: key,
		Payload: []byte(`{"a":1}`), MaxAttempts: 3}
}

func TestReceiverRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	body := "success"
	p := retry.Policy{MaxAttempts: 5, Intervals: []time.Duration{time.Second}}
	timeout := 3 * time.Second
	got, err := s.UpdateReceiver(ctx, r.ID, store.ReceiverPatch{SuccessBody: &body, Retry: &p, Timeout: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	if got.SuccessBody == nil || *got.SuccessBody != "success" || got.Retry == nil || got.Retry.MaxAttempts != 5 || got.Timeout != timeout {
		t.Fatalf("update: %+v", got)
	}
	got, err = s.UpdateReceiver(ctx, r.ID, store.ReceiverPatch{ClearRetry: true, ClearSuccessBody: true})
	if err != nil || got.Retry != nil || got.SuccessBody != nil || got.Timeout != timeout {
		t.Fatalf("clear: %+v %v", got, err)
	}
	rot, err := s.RotateSecret(ctx, r.ID, "whsec_y", time.Hour)
	if err != nil || rot.SigningSecret != "whsec_y" || rot.PreviousSecret != "whsec_x" || rot.PreviousSecretUntil == nil {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	if _, err := s.GetReceiver(ctx, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing receiver: %v", err)
	}
}

func TestInsertNotificationIsIdempotent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	n := newNotification(r, "order-1")
	first, created, err := s.InsertNotification(ctx, *n)
	if err != nil || !created || first.Status != store.StatusPending {
		t.Fatalf("first insert: %+v %v %v", first, created, err)
	}
	again, created, err := s.InsertNotification(ctx, *n)
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("second insert: %+v %v %v", again, created, err)
	}
	n.ReceiverID = uuid.New()
	n.ID = uuid.New()
	if _, _, err := s.InsertNotification(ctx, *n); !errors.Is(err, store.ErrUnknownReceiver) {
		t.Fatalf("unknown receiver: %v", err)
	}
}

func TestRecordAttempts(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	n := newNotification(r, "order-2")
	st, err := s.BeginDelivery(ctx, n)
	if err != nil || st.Status != store.StatusPending || st.Attempts != 0 || st.MaxAttempts != 3 {
		t.Fatalf("begin: %+v %v", st, err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	fail := store.AttemptRecord{
		Attempt:   store.Attempt{NotificationID: n.ID, AttemptNo: 1, StartedAt: now, Duration: 20 * time.Millisecond, StatusCode: 500, Outcome: store.OutcomeFailure, Error: "HTTP 500", ResponseBody: "oops"},
		NewStatus: store.StatusPending, NextAttemptAt: now.Add(time.Second),
	}
	other := newNotification(r, "order-3")
	if _, err := s.BeginDelivery(ctx, other); err != nil {
		t.Fatal(err)
	}
	ok := store.AttemptRecord{
		Attempt:   store.Attempt{NotificationID: other.ID, AttemptNo: 1, StartedAt: now, Duration: 5 * time.Millisecond, StatusCode: 200, Outcome: store.OutcomeSuccess},
		NewStatus: store.StatusDelivered,
	}
	for range 2 { // the second write must change nothing
		if err := s.RecordAttempts(ctx, []store.AttemptRecord{fail, ok}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetNotification(ctx, n.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusPending || got.Attempts != 1 || got.NextAttemptAt == nil || !got.NextAttemptAt.Equal(now.Add(time.Second)) ||
		got.LastStatusCode == nil || *got.LastStatusCode != 500 || got.LastError == nil {
		t.Fatalf("after failure: %+v", got)
	}
	got, _ = s.GetNotification(ctx, other.ID)
	if got.Status != store.StatusDelivered || got.Attempts != 1 || got.DeliveredAt == nil || got.NextAttemptAt != nil {
		t.Fatalf("after success: %+v", got)
	}
	atts, err := s.ListAttempts(ctx, n.ID)
	if err != nil || len(atts) != 1 || atts[0].ResponseBody != "oops" || atts[0].Duration != 20*time.Millisecond {
		t.Fatalf("attempts: %+v %v", atts, err)
	}
	// Last attempt fails: terminal.
	final := fail
	final.AttemptNo, final.StartedAt, final.NewStatus = 2, now.Add(time.Second), store.StatusFailed
	if err := s.RecordAttempts(ctx, []store.AttemptRecord{final}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetNotification(ctx, n.ID)
	if got.Status != store.StatusFailed || got.Attempts != 2 || got.NextAttemptAt != nil {
		t.Fatalf("after final failure: %+v", got)
	}
	// A manual redelivery that succeeds turns failed into delivered and is not counted as automatic.
	manual := store.AttemptRecord{
		Attempt:   store.Attempt{NotificationID: n.ID, AttemptNo: -1, StartedAt: now.Add(2 * time.Second), StatusCode: 200, Outcome: store.OutcomeSuccess},
		NewStatus: store.StatusDelivered,
	}
	if err := s.RecordAttempts(ctx, []store.AttemptRecord{manual}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.GetNotification(ctx, n.ID)
	if got.Status != store.StatusDelivered || got.Attempts != 2 || got.DeliveredAt == nil {
		t.Fatalf("after manual: %+v", got)
	}
	st, err = s.BeginDelivery(ctx, n)
	if err != nil || st.Status != store.StatusDelivered || st.Attempts != 2 {
		t.Fatalf("begin existing: %+v %v", st, err)
	}
}

func TestBeginDeliveriesBatch(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	old := newNotification(r, "old")
	if _, err := s.BeginDelivery(ctx, old); err != nil {
		t.Fatal(err)
	}
	fresh := newNotification(r, "fresh")
	states, err := s.BeginDeliveries(ctx, []*store.NewNotification{old, fresh, fresh})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || states[old.ID].Inserted || !states[fresh.ID].Inserted ||
		states[fresh.ID].Status != store.StatusPending || states[fresh.ID].MaxAttempts != 3 || states[fresh.ID].NextAttemptAt == nil {
		t.Fatalf("states: %+v", states)
	}
	var count int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&count); err != nil || count != 2 {
		t.Fatalf("rows = %d (%v), want 2", count, err)
	}
	unknown := newNotification(&store.Receiver{ID: uuid.New()}, "x")
	if _, err := s.BeginDeliveries(ctx, []*store.NewNotification{fresh, unknown}); !errors.Is(err, store.ErrUnknownReceiver) {
		t.Fatalf("unknown receiver in batch: %v", err)
	}
}

func TestBeginDeliveryExistingOnlyNeverCreates(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	gone := newNotification(r, "deleted-by-retention")
	gone.ExistingOnly = true
	if _, err := s.BeginDelivery(ctx, gone); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("single: %v, want ErrNotFound", err)
	}
	other := newNotification(r, "new")
	states, err := s.BeginDeliveries(ctx, []*store.NewNotification{gone, other})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := states[gone.ID]; ok || !states[other.ID].Inserted {
		t.Fatalf("batch: %+v", states)
	}
	if _, err := s.GetNotification(ctx, gone.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an ExistingOnly begin created the notification: %v", err)
	}
}
