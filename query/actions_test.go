package query

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

// fail puts a notification in the state the worker leaves after its last
// attempt failed, created age ago.
func (a *testAPI) fail(id uuid.UUID, age time.Duration) {
	a.t.Helper()
	a.exec(`UPDATE notifications SET status = 'failed', attempts = 3, max_attempts = 3, next_attempt_at = NULL,
		last_attempt_at = now(), last_status_code = 500, last_error = 'HTTP 500',
		created_at = now() - make_interval(secs => $2) WHERE id = $1`, id, age.Seconds())
}

func (a *testAPI) get(id uuid.UUID) *store.Notification {
	a.t.Helper()
	n, err := a.store.GetNotification(context.Background(), id)
	if err != nil {
		a.t.Fatal(err)
	}
	return n
}

// queued decodes the task with id in queue, or returns nil.
func (a *testAPI) queued(queue, id string) *tasks.Deliver {
	a.t.Helper()
	info, err := a.inspector.GetTaskInfo(queue, id)
	if err != nil {
		return nil
	}
	d, err := tasks.Decode(info.Payload)
	if err != nil {
		a.t.Fatal(err)
	}
	return d
}

func TestRedeliverNumbersAndQueues(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	id := a.ingest(r, "order-1", "trade.paid")
	a.fail(id, time.Minute)
	before := a.get(id)

	// Concurrent requests each get their own number.
	const n = 12
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := r.APIKey
			if i%2 == 0 {
				token = testAdminToken
			}
			var out struct {
				ID         uuid.UUID `json:"id"`
				Redelivery int       `json:"redelivery"`
			}
			a.must(http.StatusAccepted, "POST", "/v1/notifications/"+id.String()+"/redeliver", token, nil, &out)
			if out.ID != id {
				t.Errorf("answer names %s", out.ID)
			}
			mu.Lock()
			got = append(got, out.Redelivery)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(got)
	for i, no := range got {
		if no != i+1 {
			t.Fatalf("redelivery numbers %v, want 1..%d each once", got, n)
		}
		d := a.queued(tasks.QueueFirst, fmt.Sprintf("%s:m%d", id, no))
		if d == nil || d.Attempt != 0 || d.Manual != no || d.ID != id || d.ReceiverID != r.ID || string(d.Payload) != `{"key":"order-1"}` {
			t.Fatalf("manual task %d: %+v", no, d)
		}
	}
	// The automatic schedule is untouched.
	after := a.get(id)
	if after.Status != store.StatusFailed || after.Attempts != before.Attempts || after.MaxAttempts != before.MaxAttempts || after.NextAttemptAt != nil {
		t.Fatalf("redeliver changed the schedule: %+v", after)
	}

	// The cap.
	a.exec(`UPDATE notifications SET manual_requests = $2 WHERE id = $1`, id, maxManualRedeliveries)
	code, body := a.do("POST", "/v1/notifications/"+id.String()+"/redeliver", r.APIKey, nil)
	if e := apiErr(t, body); code != http.StatusConflict || e.Code != "redelivery_limit" {
		t.Fatalf("over the cap: %d %s", code, body)
	}

	// Delivered and pending notifications may be redelivered; cancelled ones not.
	delivered := a.ingest(r, "order-2", "trade.paid")
	a.exec(`UPDATE notifications SET status = 'delivered', next_attempt_at = NULL, delivered_at = now() WHERE id = $1`, delivered)
	pending := a.ingest(r, "order-3", "trade.paid")
	for _, id := range []uuid.UUID{delivered, pending} {
		a.must(http.StatusAccepted, "POST", "/v1/notifications/"+id.String()+"/redeliver", r.APIKey, nil, nil)
	}
	a.must(http.StatusOK, "POST", "/v1/notifications/"+pending.String()+"/cancel", testProducerToken, nil, nil)
	code, body = a.do("POST", "/v1/notifications/"+pending.String()+"/redeliver", r.APIKey, nil)
	if e := apiErr(t, body); code != http.StatusConflict || e.Code != "conflict" {
		t.Fatalf("redeliver cancelled: %d %s", code, body)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	id := a.ingest(r, "order-1", "trade.paid")
	var n notificationView
	a.must(http.StatusOK, "POST", "/v1/notifications/"+id.String()+"/cancel", testProducerToken, nil, &n)
	if n.ID != id || n.Status != store.StatusCancelled || n.NextAttemptAt != nil {
		t.Fatalf("cancelled: %+v", n.Notification)
	}
	if got := a.get(id); got.Status != store.StatusCancelled || got.NextAttemptAt != nil {
		t.Fatalf("stored: %+v", got)
	}
	code, body := a.do("POST", "/v1/notifications/"+id.String()+"/cancel", testAdminToken, nil)
	if e := apiErr(t, body); code != http.StatusConflict || e.Code != "conflict" {
		t.Fatalf("second cancel: %d %s", code, body)
	}
	delivered := a.ingest(r, "order-2", "trade.paid")
	a.exec(`UPDATE notifications SET status = 'delivered', next_attempt_at = NULL WHERE id = $1`, delivered)
	if code, body := a.do("POST", "/v1/notifications/"+delivered.String()+"/cancel", testAdminToken, nil); code != http.StatusConflict {
		t.Fatalf("cancel delivered: %d %s", code, body)
	}
	if got := a.get(delivered); got.Status != store.StatusDelivered {
		t.Fatalf("cancel changed a delivered notification: %+v", got)
	}
	for _, path := range []string{"/v1/notifications/" + uuid.NewString() + "/cancel", "/v1/notifications/not-a-uuid/cancel"} {
		if code, body := a.do("POST", path, testAdminToken, nil); code != http.StatusNotFound {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
}

func TestRecoverWindow(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r, other := a.receiver(), a.receiver()
	day := 24 * time.Hour
	now := time.Now()
	since, until := now.Add(-3*day), now.Add(-day)

	mk := func(rc testReceiver, key string, age time.Duration, failed bool) uuid.UUID {
		id := a.ingest(rc, key, "trade.paid")
		if failed {
			a.fail(id, age)
		} else {
			a.exec(`UPDATE notifications SET status = 'delivered', next_attempt_at = NULL, created_at = now() - make_interval(secs => $2) WHERE id = $1`, id, age.Seconds())
		}
		return id
	}
	inside := []uuid.UUID{mk(r, "in-1", 2*day, true), mk(r, "in-2", 2*day+time.Hour, true), mk(r, "in-3", 3*day-time.Minute, true)}
	outside := []uuid.UUID{mk(r, "old", 4*day, true), mk(r, "new", day/2, true), mk(other, "other", 2*day, true)}
	deliveredInside := mk(r, "ok", 2*day, false)
	// The window is [since, until): a notification created exactly at until is outside.
	atUntil := a.ingest(r, "at-until", "trade.paid")
	a.fail(atUntil, 0)
	a.exec(`UPDATE notifications SET created_at = $2 WHERE id = $1`, atUntil, until)
	outside = append(outside, atUntil)

	body := map[string]string{"since": since.Format(time.RFC3339Nano), "until": until.Format(time.RFC3339Nano)}
	var out struct {
		Recovered int `json:"recovered"`
	}
	a.must(http.StatusAccepted, "POST", "/v1/receivers/"+r.ID.String()+"/recover", r.APIKey, body, &out)
	if out.Recovered != len(inside) {
		t.Fatalf("recovered %d, want %d", out.Recovered, len(inside))
	}
	for _, id := range inside {
		n := a.get(id)
		if n.Status != store.StatusPending || n.Attempts != 3 || n.MaxAttempts != 4 || n.NextAttemptAt == nil ||
			n.LastError == nil || *n.LastError != "HTTP 500" {
			t.Fatalf("recovered notification: %+v", n)
		}
		// Attempt 4 is a retry, queued now.
		d := a.queued(tasks.QueueRetry, id.String()+":4")
		if d == nil || d.Attempt != 4 || d.ID != id {
			t.Fatalf("task for attempt 4 of %s: %+v", id, d)
		}
	}
	for _, id := range outside {
		if n := a.get(id); n.Status != store.StatusFailed || n.MaxAttempts != 3 {
			t.Fatalf("outside the window: %+v", n)
		}
	}
	if n := a.get(deliveredInside); n.Status != store.StatusDelivered {
		t.Fatalf("delivered one: %+v", n)
	}

	// Twice: nothing more (the admin may call it too).
	a.must(http.StatusAccepted, "POST", "/v1/receivers/"+r.ID.String()+"/recover", testAdminToken, body, &out)
	if out.Recovered != 0 {
		t.Fatalf("second recover: %d", out.Recovered)
	}
	// until defaults to now: the last day holds "new" and the one created
	// exactly at the previous until.
	a.must(http.StatusAccepted, "POST", "/v1/receivers/"+r.ID.String()+"/recover", r.APIKey,
		map[string]string{"since": now.Add(-day - time.Minute).Format(time.RFC3339)}, &out)
	if out.Recovered != 2 {
		t.Fatalf("recover of the last day: %d, want 2", out.Recovered)
	}
}

// TestRecoverBatches recovers more rows than one batch holds.
func TestRecoverBatches(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	const rows = 2*recoverBatchSize + 345
	a.exec(`INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, status, attempts, max_attempts, created_at)
		SELECT gen_random_uuid(), $1, 'trade.paid', 'bulk-' || i, '{}'::bytea, 'failed', 2, 2, now() - make_interval(secs => i)
		FROM generate_series(1, $2) i`, r.ID, rows)
	var out struct {
		Recovered int `json:"recovered"`
	}
	a.must(http.StatusAccepted, "POST", "/v1/receivers/"+r.ID.String()+"/recover", r.APIKey,
		map[string]string{"since": time.Now().Add(-day()).Format(time.RFC3339)}, &out)
	if out.Recovered != rows {
		t.Fatalf("recovered %d, want %d", out.Recovered, rows)
	}
	var pending, queued int
	if err := a.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM notifications WHERE status = 'pending' AND max_attempts = 3`).Scan(&pending); err != nil {
		t.Fatal(err)
	}
	q, err := a.inspector.GetQueueInfo(tasks.QueueRetry)
	if err == nil {
		queued = q.Size
	}
	if pending != rows || queued != rows {
		t.Fatalf("pending %d, queued %d, want %d each", pending, queued, rows)
	}
}

func day() time.Duration { return 24 * time.Hour }

func TestRecoverRejectsBadWindows(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	now := time.Now().UTC()
	f := func(t time.Time) string { return t.Format(time.RFC3339) }
	cases := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"no since", map[string]string{}, 422, "invalid_field", "since"},
		{"since not a time", map[string]string{"since": "yesterday"}, 422, "invalid_field", "since"},
		{"since a number", map[string]any{"since": 1700000000}, 422, "invalid_field", "since"},
		{"until not a time", map[string]string{"since": f(now.Add(-time.Hour)), "until": "now"}, 422, "invalid_field", "until"},
		{"until before since", map[string]string{"since": f(now), "until": f(now.Add(-time.Hour))}, 422, "invalid_field", "until"},
		{"empty window", map[string]string{"since": f(now), "until": f(now)}, 422, "invalid_field", "until"},
		{"since in the future", map[string]string{"since": f(now.Add(time.Hour))}, 422, "invalid_field", "until"},
		{"window too long", map[string]string{"since": f(now.Add(-15 * day()))}, 422, "invalid_field", "since"},
		{"window too long with until", map[string]string{"since": f(now.Add(-30 * day())), "until": f(now.Add(-15 * day()))}, 422, "invalid_field", "since"},
		{"unknown field", map[string]string{"since": f(now.Add(-time.Hour)), "from": f(now)}, 422, "invalid_field", "from"},
		{"not JSON", "since=yesterday", 400, "invalid_json", ""},
		{"empty body", "", 400, "invalid_json", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := a.with(t)
			code, raw := a.do("POST", "/v1/receivers/"+r.ID.String()+"/recover", r.APIKey, c.body)
			if code != c.status {
				t.Fatalf("%d %s, want %d", code, raw, c.status)
			}
			if e := apiErr(t, raw); e.Code != c.code || e.Field != c.field {
				t.Fatalf("error %+v, want %s field %q", e, c.code, c.field)
			}
		})
	}
	// Exactly 14 days is allowed; an unknown receiver is 404 even to the admin.
	fourteen := map[string]string{"since": f(now.Add(-14 * day())), "until": f(now)}
	a.must(http.StatusAccepted, "POST", "/v1/receivers/"+r.ID.String()+"/recover", r.APIKey, fourteen, nil)
	if code, raw := a.do("POST", "/v1/receivers/"+uuid.NewString()+"/recover", testAdminToken, fourteen); code != http.StatusNotFound {
		t.Fatalf("unknown receiver: %d %s", code, raw)
	}
}
