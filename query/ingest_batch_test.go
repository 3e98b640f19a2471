package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

// TestIngestBatchGivesEachItsOutcome flushes one batch holding every kind of
// notification the ingest can meet, and checks that each gets its own
// outcome, as if it had been recorded alone: new, replayed, twice in one
// batch, for a receiver that does not exist, is deactivated, is disabled,
// and with a callback_url outside the receiver's callback_hosts.
func TestIngestBatchGivesEachItsOutcome(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	ok, off, disabled, hosts := a.receiver(), a.receiver(), a.receiver(), a.receiver()
	a.must(http.StatusOK, "PATCH", "/v1/receivers/"+off.ID.String(), testAdminToken, map[string]any{"active": false}, nil)
	a.must(http.StatusOK, "PATCH", "/v1/receivers/"+hosts.ID.String(), testAdminToken, map[string]any{"callback_hosts": []string{"hooks.example.com"}}, nil)
	if _, err := a.store.Pool().Exec(ctx, `UPDATE receivers SET status = 'disabled', disabled_at = now(), disabled_reason = 'test' WHERE id = $1`, disabled.ID); err != nil {
		t.Fatal(err)
	}
	old := a.insert(ok, "old", "trade.paid")
	item := func(r uuid.UUID, key, callbackURL string) *ingestItem {
		return &ingestItem{nn: store.NewNotification{ID: tasks.NotificationID(r, key), ReceiverID: r, EventType: "trade.paid",
			IdempotencyKey: key, CallbackURL: callbackURL, Payload: []byte(`{"n":1}`)}, done: make(chan ingestOutcome, 1)}
	}
	batch := []*ingestItem{
		item(ok.ID, "new", ""), item(ok.ID, "old", ""), item(ok.ID, "twice", ""), item(ok.ID, "twice", ""),
		item(uuid.New(), "k", ""), item(off.ID, "k", ""), item(disabled.ID, "k", ""),
		item(hosts.ID, "k", "https://evil.example.net/cb"), item(hosts.ID, "k2", "https://hooks.example.com/cb"),
	}
	a.srv.ingests.flush(batch)
	type want struct {
		created bool
		status  string
		field   string // of the 422; "" for none
	}
	wants := []want{
		{true, store.StatusPending, ""}, {false, store.StatusPending, ""}, {true, store.StatusPending, ""}, {false, store.StatusPending, ""},
		{field: "receiver_id"}, {field: "receiver_id"}, {true, store.StatusFailed, ""},
		{field: "callback_url"}, {true, store.StatusPending, ""},
	}
	for i, it := range batch {
		o, w := <-it.done, wants[i]
		if w.field != "" {
			var apiErr *APIError
			if !errors.As(o.err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || apiErr.Field != w.field {
				t.Errorf("item %d (%s): err %v, want a 422 naming %s", i, it.nn.IdempotencyKey, o.err, w.field)
			}
			continue
		}
		if o.err != nil || o.created != w.created || o.n == nil || o.n.Status != w.status || o.n.ID != it.nn.ID {
			t.Errorf("item %d (%s): %+v, want created=%v status %s", i, it.nn.IdempotencyKey, o, w.created, w.status)
		}
		if i == 1 && o.n != nil && !o.n.CreatedAt.Equal(old.CreatedAt) {
			t.Errorf("the replayed item answers created_at %s, the stored one is %s", o.n.CreatedAt, old.CreatedAt)
		}
	}
	var rows int
	if err := a.store.Pool().QueryRow(ctx, `SELECT count(*) FROM notifications`).Scan(&rows); err != nil || rows != 5 {
		t.Errorf("%d notifications on record (%v), want 5: old, new, twice, the disabled receiver's, k2", rows, err)
	}
}

// TestConcurrentIngestsAnswerAsAlone sends many requests at once, so that
// they share batches, and checks the answers are those of requests sent one
// by one: every key recorded once, a key sent many times with the same
// content accepted every time with one id, a key sent with other content
// refused with 409.
func TestConcurrentIngestsAnswerAsAlone(t *testing.T) {
	a := newTestAPI(t)
	r := a.receiver()
	type answer struct {
		status int
		id     string
		code   string
	}
	send := func(key string, payload any) answer {
		status, body := a.do("POST", "/v1/notifications", testProducerToken, map[string]any{
			"receiver_id": r.ID, "event_type": "trade.paid", "idempotency_key": key, "payload": payload})
		var out struct {
			ID    string                `json:"id"`
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(body, &out)
		return answer{status, out.ID, out.Error.Code}
	}
	const distinct, same = 60, 20
	answers := make([]answer, distinct+same+2)
	var wg sync.WaitGroup
	for i := range distinct {
		wg.Go(func() { answers[i] = send(fmt.Sprintf("k%d", i), map[string]int{"n": i}) })
	}
	for i := range same {
		wg.Go(func() { answers[distinct+i] = send("same", map[string]int{"n": 1}) })
	}
	wg.Go(func() { answers[distinct+same] = send("conflict", map[string]int{"n": 1}) })
	wg.Go(func() { answers[distinct+same+1] = send("conflict", map[string]int{"n": 2}) })
	wg.Wait()
	for i, an := range answers[:distinct+same] {
		if an.status != http.StatusAccepted || an.id == "" {
			t.Errorf("request %d: %+v, want 202 with an id", i, an)
		}
		if i >= distinct && an.id != answers[distinct].id {
			t.Errorf("request %d for key same: id %s, another got %s", i, an.id, answers[distinct].id)
		}
	}
	c1, c2 := answers[distinct+same], answers[distinct+same+1]
	if !(c1.status == http.StatusAccepted && c2.status == http.StatusConflict && c2.code == "idempotency_conflict") &&
		!(c2.status == http.StatusAccepted && c1.status == http.StatusConflict && c1.code == "idempotency_conflict") {
		t.Errorf("key conflict: %+v and %+v, want one 202 and one 409 idempotency_conflict", c1, c2)
	}
	var rows int
	if err := a.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM notifications`).Scan(&rows); err != nil || rows != distinct+2 {
		t.Errorf("%d notifications on record (%v), want %d", rows, err, distinct+2)
	}
	// A replay queues its notification again: internal/enqueue's markers
	// keep that to one task while the first is a batch and the replay is
	// batched too; a replay written alone is guarded only by its own task
	// id, so it may add a task beside a batch (the worker records the
	// attempt once). Notifications sent once are queued once.
	replayed := map[uuid.UUID]bool{tasks.NotificationID(r.ID, "same"): true, tasks.NotificationID(r.ID, "conflict"): true}
	a.checkQueuedOnce(distinct+2, replayed)
}

// checkQueuedOnce checks that the first-attempt queue holds want
// notifications, each in one task (its own or a batch) unless replayed
// says it was sent more than once, and reports how many tasks carry them.
func (a *testAPI) checkQueuedOnce(want int, replayed map[uuid.UUID]bool) {
	a.t.Helper()
	infos, err := a.inspector.ListPendingTasks(tasks.QueueFirst, asynq.PageSize(1000))
	if err != nil {
		a.t.Fatal(err)
	}
	seen := map[uuid.UUID]int{}
	for _, info := range infos {
		var members []*tasks.Deliver
		if info.Type == tasks.TypeBatch {
			members, err = tasks.DecodeBatch(info.Payload)
		} else {
			var d *tasks.Deliver
			d, err = tasks.Decode(info.Payload)
			members = []*tasks.Deliver{d}
		}
		if err != nil {
			a.t.Fatalf("task %s: %v", info.ID, err)
		}
		for _, d := range members {
			seen[d.ID]++
		}
	}
	for id, k := range seen {
		if k != 1 && !replayed[id] {
			a.t.Errorf("notification %s is in %d tasks", id, k)
		}
	}
	if len(seen) != want {
		a.t.Errorf("%d notifications queued, want %d", len(seen), want)
	}
	a.t.Logf("%d notifications queued in %d tasks", len(seen), len(infos))
}
