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
	if _, _, err := s.InsertNotification(ctx, *n); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	fail := store.AttemptRecord{
		Attempt:   store.Attempt{NotificationID: n.ID, AttemptNo: 1, StartedAt: now, Duration: 20 * time.Millisecond, StatusCode: 500, Outcome: store.OutcomeFailure, Error: "HTTP 500", ResponseBody: "oops"},
		NewStatus: store.StatusPending, NextAttemptAt: now.Add(time.Second),
	}
	other := newNotification(r, "order-3") // not on record: its first attempt creates it
	ok := store.AttemptRecord{
		Attempt:   store.Attempt{NotificationID: other.ID, AttemptNo: 1, StartedAt: now, Duration: 5 * time.Millisecond, StatusCode: 200, Outcome: store.OutcomeSuccess},
		NewStatus: store.StatusDelivered, Create: other,
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
	states, err := s.DeliveryStates(ctx, []uuid.UUID{n.ID, uuid.New()})
	if st, found := states[n.ID]; err != nil || len(states) != 1 || !found || st.Status != store.StatusDelivered || st.Attempts != 2 {
		t.Fatalf("after manual: %+v %v", states, err)
	}
}

// A first attempt writes a notification that is not on record in its state
// after the attempt, whatever the outcome.
func TestRecordAttemptsCreatesNotification(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	now := time.Now().UTC().Truncate(time.Millisecond)
	tests := []struct {
		name, status, outcome string
		attempt, code         int
	}{
		{"delivered", store.StatusDelivered, store.OutcomeSuccess, 1, 200},
		{"retry due", store.StatusPending, store.OutcomeFailure, 1, 500},
		{"gone", store.StatusFailed, store.OutcomeGone, 1, 410},
		{"deferred before any attempt", store.StatusPending, "", 0, 0},
	}
	for _, tc := range tests {
		n := newNotification(r, tc.name)
		rec := store.AttemptRecord{
			Attempt:   store.Attempt{NotificationID: n.ID, AttemptNo: tc.attempt, StartedAt: now, Duration: 7 * time.Millisecond, StatusCode: tc.code, Outcome: tc.outcome},
			NewStatus: tc.status, NextAttemptAt: now.Add(time.Minute), Create: n,
		}
		for range 2 { // the second write must change nothing
			if err := s.RecordAttempts(ctx, []store.AttemptRecord{rec}); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		got, err := s.GetNotification(ctx, n.ID)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got.Status != tc.status || got.Attempts != tc.attempt || got.MaxAttempts != 3 ||
			string(got.Payload) != `{"a":1}` || got.IdempotencyKey != tc.name ||
			(tc.status == store.StatusPending) != (got.NextAttemptAt != nil) || (tc.status == store.StatusDelivered) != (got.DeliveredAt != nil) ||
			(tc.attempt == 0) != (got.LastAttemptAt == nil) || (tc.code == 0) != (got.LastStatusCode == nil) {
			t.Errorf("%s: %+v", tc.name, got)
		}
		atts, err := s.ListAttempts(ctx, n.ID)
		if err != nil || len(atts) != tc.attempt || (tc.attempt > 0 && atts[0].Outcome != tc.outcome) {
			t.Errorf("%s: attempts %+v %v", tc.name, atts, err)
		}
	}
}

// The same business key recorded by someone else meanwhile (the HTTP ingest)
// is updated instead, also when its insert commits while the record's
// statement runs (invisible to its snapshot).
func TestRecordAttemptsCreateMeetsConcurrentInsert(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	now := time.Now().UTC()
	record := func(n *store.NewNotification) error {
		return s.RecordAttempts(ctx, []store.AttemptRecord{{
			Attempt:   store.Attempt{NotificationID: n.ID, AttemptNo: 1, StartedAt: now, StatusCode: 200, Outcome: store.OutcomeSuccess},
			NewStatus: store.StatusDelivered, Create: n,
		}})
	}
	check := func(n *store.NewNotification) {
		t.Helper()
		got, err := s.GetNotification(ctx, n.ID)
		if err != nil || got.Status != store.StatusDelivered || got.Attempts != 1 {
			t.Fatalf("%s: %+v %v", n.IdempotencyKey, got, err)
		}
		if atts, err := s.ListAttempts(ctx, n.ID); err != nil || len(atts) != 1 {
			t.Fatalf("%s: attempts %+v %v", n.IdempotencyKey, atts, err)
		}
	}

	visible := newNotification(r, "ingested-before")
	if _, _, err := s.InsertNotification(ctx, *visible); err != nil {
		t.Fatal(err)
	}
	if err := record(visible); err != nil {
		t.Fatal(err)
	}
	check(visible)

	// An insert still open when the record starts: the record's INSERT waits
	// for it, finds the conflict, and cannot see the row.
	late := newNotification(r, "ingested-during")
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, max_attempts, next_attempt_at)
		VALUES ($1, $2, 'trade.paid', $3, '{}', 3, now())`, late.ID, late.ReceiverID, late.IdempotencyKey); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- record(late) }()
	// Let the record's statement start and block on the open insert.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting bool
		if err := s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO notifications%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the record never waited for the open insert")
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	check(late)
}

func TestDeliveryStates(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	old := newNotification(r, "old")
	if _, _, err := s.InsertNotification(ctx, *old); err != nil {
		t.Fatal(err)
	}
	missing := newNotification(r, "not-recorded")
	states, err := s.DeliveryStates(ctx, []uuid.UUID{old.ID, missing.ID, old.ID})
	if err != nil {
		t.Fatal(err)
	}
	st, found := states[old.ID]
	if _, ok := states[missing.ID]; ok || !found || len(states) != 1 || st.Status != store.StatusPending || st.MaxAttempts != 3 || st.CreatedAt.IsZero() {
		t.Fatalf("states: %+v", states)
	}
}
