package scheduler

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notifyd/notifyd/internal/lifecycle"
	"github.com/notifyd/notifyd/internal/store"
)

// record writes one attempt of n through the workers' batched statement,
// counting for its receiver's health unless own is set.
func (e *env) record(n *store.Notification, no int, started time.Time, ok bool) {
	e.t.Helper()
	a := store.AttemptRecord{Attempt: store.Attempt{NotificationID: n.ID, AttemptNo: no, StartedAt: started,
		Duration: 10 * time.Millisecond, StatusCode: 500, Outcome: store.OutcomeFailure}, HealthOf: n.ReceiverID,
		NewStatus: store.StatusPending, NextAttemptAt: time.Now().Add(time.Hour)}
	if ok {
		a.StatusCode, a.Outcome, a.NewStatus = 200, store.OutcomeSuccess, store.StatusDelivered
	}
	if no < 0 {
		a.NewStatus = ""
		if ok {
			a.NewStatus = store.StatusDelivered
		}
	}
	if err := e.store.RecordAttempts(context.Background(), []store.AttemptRecord{a}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) health(r *store.Receiver) *store.Receiver {
	e.t.Helper()
	got, err := e.store.GetReceiver(context.Background(), r.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// eventsOf returns the event notifications of type event for subject,
// keyed by the receiver they are addressed to.
func (e *env) eventsOf(event string, subject uuid.UUID) map[uuid.UUID]*store.Notification {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT id FROM notifications WHERE event_type = $1`, event)
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	out := map[uuid.UUID]*store.Notification{}
	for _, id := range ids {
		n, err := e.store.GetNotification(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		var ev lifecycle.Event
		if err := json.Unmarshal(n.Payload, &ev); err != nil {
			e.t.Fatal(err)
		}
		if ev.ReceiverID == subject.String() {
			out[n.ReceiverID] = n
		}
	}
	return out
}

// metricValue reads a gauge or counter as /metrics would show it.
func metricValue(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestLifecycleJob drives receivers through every transition with the
// real statements: the recorder's health columns, the job's rules, the
// events recorded and queued with them, the pending notifications of a
// disabled receiver, enable, and the operator receiver's exemptions.
func TestLifecycleJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	op, _, err := e.store.SetOperatorReceiver(ctx, "https://ops.example.com/events",
		&store.Receiver{ID: uuid.New(), Name: "notifyd operator", SigningSecret: "whsec_op"})
	if err != nil {
		t.Fatal(err)
	}
	down := e.receiver()
	status := "https://shop.example.com/status"
	if _, err := e.store.UpdateReceiver(ctx, down.ID, store.ReceiverPatch{StatusCallbackURL: &status}); err != nil {
		t.Fatal(err)
	}
	healthy := e.receiver()
	s := e.scheduler(Config{FailingAfter: time.Hour, AutoDisableAfter: 5 * time.Hour})

	// The recorder keeps the run of failures: its first failure, not the
	// later ones; a success ends it, but not a run that began after it.
	n1 := e.notification(down, "")
	first := time.Now().Add(-3 * time.Hour).Truncate(time.Millisecond)
	e.record(n1, 1, first, false)
	e.record(n1, 2, first.Add(time.Hour), false)
	if got := e.health(down).FailingSince; got == nil || !got.Equal(first) {
		t.Fatalf("failing_since = %v, want the first failure %v", got, first)
	}
	h1 := e.notification(healthy, "")
	e.record(h1, 1, first, false)
	e.record(h1, -1, first.Add(-time.Minute), true) // a success older than the failure: the run goes on
	if got := e.health(healthy).FailingSince; got == nil || !got.Equal(first) {
		t.Fatalf("an older success cleared a later run of failures: failing_since = %v", got)
	}
	e.record(h1, -2, first.Add(time.Minute), true)
	if h := e.health(healthy); h.FailingSince != nil || h.LastSuccessAt == nil {
		t.Fatalf("a success did not end the run: %+v", h.Health)
	}

	before := metricValue(t, "notifyd_receiver_transitions_total", "event", store.EventFailing)
	res, err := s.RunLifecycle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Transitions) != 1 || res.Transitions[0].Event != store.EventFailing || res.Transitions[0].Receiver.ID != down.ID {
		t.Fatalf("transitions %+v, want %s failing", res.Transitions, down.ID)
	}
	if got := metricValue(t, "notifyd_receiver_transitions_total", "event", store.EventFailing) - before; got != 1 {
		t.Errorf("receiver_transitions_total{receiver.failing} moved by %v, want 1", got)
	}
	if got := metricValue(t, "notifyd_receivers", "state", store.ReceiverFailing); got != 1 {
		t.Errorf("receivers{failing} = %v, want 1", got)
	}
	if res.Receivers[store.ReceiverActive] != 2 || res.Receivers[store.ReceiverFailing] != 1 {
		t.Errorf("receivers by state %v, want 2 active (the healthy one, the operator), 1 failing", res.Receivers)
	}
	ev := e.eventsOf(store.EventFailing, down.ID)
	if len(ev) != 2 || ev[op.ID] == nil || ev[down.ID] == nil || *ev[down.ID].CallbackURL != status {
		t.Fatalf("receiver.failing should go to the operator and the receiver's status URL, got %v", ev)
	}
	if e.taskFor(ev[op.ID]) == nil || e.taskFor(ev[down.ID]) == nil {
		t.Fatal("the events' first attempts are not queued")
	}
	if again, _ := s.RunLifecycle(ctx); len(again.Transitions) != 0 {
		t.Fatalf("a second run moved %+v", again.Transitions)
	}

	// Past the auto-disable threshold: disabled, its pending notification
	// fails, its own events stay pending to be delivered.
	if _, err := e.pool.Exec(ctx, `UPDATE receivers SET failing_since = now() - interval '6 hours' WHERE id = $1`, down.ID); err != nil {
		t.Fatal(err)
	}
	res, err = s.RunLifecycle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := e.health(down)
	if d.Status != store.ReceiverDisabled || d.DisabledAt == nil || d.DisabledReason == "" || res.FailedPending != 1 {
		t.Fatalf("after 6 h of failures: %+v, failed pending %d", d.Health, res.FailedPending)
	}
	if n := e.status(n1); n.Status != store.StatusFailed || *n.LastError != store.DisabledError {
		t.Fatalf("pending notification of a disabled receiver: %s %v", n.Status, n.LastError)
	}
	if n := e.status(ev[down.ID]); n.Status != store.StatusPending {
		t.Fatalf("the receiver's own receiver.failing event was failed with it: %s", n.Status)
	}
	var disabledEvent lifecycle.Event
	if err := json.Unmarshal(e.eventsOf(store.EventDisabled, down.ID)[op.ID].Payload, &disabledEvent); err != nil {
		t.Fatal(err)
	}
	if disabledEvent.Status != store.ReceiverDisabled || disabledEvent.PreviousStatus != store.ReceiverFailing || disabledEvent.DisabledReason != d.DisabledReason {
		t.Fatalf("receiver.disabled payload %+v", disabledEvent)
	}

	// Enabled: failing (the clock starts again) until a success, then recovered.
	r, enabled, events, err := e.store.EnableReceiver(ctx, down.ID, lifecycle.Events{}.Make)
	if err != nil || !enabled || len(events) != 2 || r.Status != store.ReceiverFailing || r.DisabledAt != nil {
		t.Fatalf("enable: %v %v %d events %+v", err, enabled, len(events), r)
	}
	if _, again, _, _ := e.store.EnableReceiver(ctx, down.ID, lifecycle.Events{}.Make); again {
		t.Fatal("enabling a receiver that is not disabled did something")
	}
	if res, _ := s.RunLifecycle(ctx); len(res.Transitions) != 0 {
		t.Fatalf("just enabled, no success yet: %+v", res.Transitions)
	}
	e.record(n1, -1, time.Now(), true)
	res, err = s.RunLifecycle(ctx)
	if err != nil || len(res.Transitions) != 1 || res.Transitions[0].Event != store.EventRecovered {
		t.Fatalf("after a success: %v %+v", err, res.Transitions)
	}
	if h := e.health(down); h.Status != store.ReceiverActive || h.FailingSince != nil {
		t.Fatalf("recovered receiver: %+v", h.Health)
	}

	// The operator receiver fails: failing, logged, never disabled, and
	// nothing about it is sent to it.
	if _, err := e.pool.Exec(ctx, `UPDATE receivers SET failing_since = now() - interval '10 hours' WHERE id = $1`, op.ID); err != nil {
		t.Fatal(err)
	}
	res, err = s.RunLifecycle(ctx)
	if err != nil || len(res.Transitions) != 1 || res.Transitions[0].Event != store.EventFailing || res.Events != 0 {
		t.Fatalf("operator receiver down: %v %+v, %d events", err, res.Transitions, res.Events)
	}
	if h := e.health(op); h.Status != store.ReceiverFailing {
		t.Fatalf("operator receiver: %+v", h.Health)
	}
}

// TestLifecycleOff: thresholds of 0 never move a receiver. Not parallel:
// it sets the receivers gauge, which TestLifecycleJob reads.
func TestLifecycleOff(t *testing.T) {
	e := newEnv(t)
	r := e.receiver()
	e.record(e.notification(r, ""), 1, time.Now().Add(-1000*time.Hour), false)
	res, err := e.scheduler(Config{}).RunLifecycle(context.Background())
	if err != nil || len(res.Transitions) != 0 {
		t.Fatalf("%v %+v", err, res.Transitions)
	}
}

// TestOperatorReceiverFollowsConfiguration: every start points the operator
// receiver at NOTIFYD_OPERATOR_CALLBACK_URL, creating it once; without the
// setting it is deactivated and
// gets no events, while receivers' own status URLs still do. Not parallel:
// its transition moves the counter TestLifecycleJob reads.
func TestOperatorReceiverFollowsConfiguration(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	fresh := func() *store.Receiver {
		return &store.Receiver{ID: uuid.New(), Name: "notifyd operator", SigningSecret: "whsec_op"}
	}
	first, created, err := e.store.SetOperatorReceiver(ctx, "https://ops.example.com/a", fresh())
	if err != nil || !created || !first.Operator || !first.Active {
		t.Fatalf("first start: %v %v %+v", err, created, first)
	}
	moved, created, err := e.store.SetOperatorReceiver(ctx, "https://ops.example.com/b", fresh())
	if err != nil || created || moved.ID != first.ID || moved.CallbackURL != "https://ops.example.com/b" {
		t.Fatalf("restart with another URL: %v %v %+v", err, created, moved)
	}
	if r, _, err := e.store.SetOperatorReceiver(ctx, "", nil); err != nil || r != nil {
		t.Fatalf("without the setting: %v %+v", err, r)
	}
	if op := e.health(first); op.Active {
		t.Fatal("operator receiver still active without NOTIFYD_OPERATOR_CALLBACK_URL")
	}
	down := e.receiver()
	status := "https://shop.example.com/status"
	if _, err := e.store.UpdateReceiver(ctx, down.ID, store.ReceiverPatch{StatusCallbackURL: &status}); err != nil {
		t.Fatal(err)
	}
	e.record(e.notification(down, ""), 1, time.Now().Add(-2*time.Hour), false)
	res, err := e.scheduler(Config{FailingAfter: time.Hour}).RunLifecycle(ctx)
	if err != nil || len(res.Transitions) != 1 || res.Events != 1 {
		t.Fatalf("%v %+v, %d events", err, res.Transitions, res.Events)
	}
	if ev := e.eventsOf(store.EventFailing, down.ID); len(ev) != 1 || ev[down.ID] == nil {
		t.Fatalf("events %v, want only the receiver's own", ev)
	}
}
