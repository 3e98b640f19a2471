package query

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/scheduler"
	"github.com/notifyd/notifyd/internal/tasks"
)

// batchAnswer is the batch endpoint's 200 body.
type batchAnswer struct {
	Results []struct {
		ID       *uuid.UUID `json:"id"`
		Status   string     `json:"status"`
		Replayed *bool      `json:"replayed"`
		Error    *APIError  `json:"error"`
	} `json:"results"`
	Failed int `json:"failed"`
}

// sendBatch posts notifications (each a map, or raw JSON text) to the
// batch endpoint with token and decodes the 200 answer.
func (a *testAPI) sendBatch(token string, notifications ...any) batchAnswer {
	a.t.Helper()
	var out batchAnswer
	a.must(http.StatusOK, "POST", "/v1/notifications/batch", token, map[string]any{"notifications": notifications}, &out)
	if len(out.Results) != len(notifications) {
		a.t.Fatalf("%d results for %d notifications", len(out.Results), len(notifications))
	}
	return out
}

func note(r uuid.UUID, key string, payload any) map[string]any {
	return map[string]any{"receiver_id": r, "event_type": "trade.paid", "idempotency_key": key, "payload": payload}
}

// want is one item's expected result: replayed (when code is empty) or the
// error code and field path.
type want struct {
	replayed bool
	code     string
	field    string
}

func (a *testAPI) checkResults(got batchAnswer, wants []want) {
	a.t.Helper()
	failed := 0
	for i, w := range wants {
		r := got.Results[i]
		if w.code != "" {
			failed++
			if r.Error == nil || r.Error.Code != w.code || r.Error.Field != w.field || r.Error.Message == "" || r.ID != nil {
				a.t.Errorf("item %d: %+v (error %+v), want error %s on %s", i, r, r.Error, w.code, w.field)
			}
			continue
		}
		if r.Error != nil || r.ID == nil || r.Status != "pending" || r.Replayed == nil || *r.Replayed != w.replayed {
			a.t.Errorf("item %d: %+v (error %+v), want pending, replayed=%v", i, r, r.Error, w.replayed)
		}
	}
	if got.Failed != failed {
		a.t.Errorf("failed = %d, want %d", got.Failed, failed)
	}
}

// TestIngestManyGivesEachItsResult sends a batch mixing valid and refused
// notifications with a token scoped to one receiver: each refused one gets
// the single endpoint's error with its place in the batch, the others are
// recorded and queued (a payload nested 5000 deep is its notification's
// error, not the request's). Keys repeat within the batch and across batches and
// the single endpoint: a repeat with the same content replays, with other
// content conflicts.
func TestIngestManyGivesEachItsResult(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	mine, other := a.receiver(), a.receiver()
	token := a.producer([]uuid.UUID{mine.ID})
	a.must(http.StatusAccepted, "POST", "/v1/notifications", token, note(mine.ID, "single", 1), nil)

	first := a.sendBatch(token,
		note(mine.ID, "a", 1),
		map[string]any{"receiver_id": mine.ID, "idempotency_key": "no-type", "payload": 1},
		note(other.ID, "b", 1),
		note(mine.ID, "a", 1),
		note(mine.ID, "a", 2),
		note(mine.ID, "single", 1),
		note(mine.ID, "single", 2),
		json.RawMessage(`{"receiver_id":"`+mine.ID.String()+`","event_type":"t","idempotency_key":"x","payload":1,"colour":"red"}`),
		json.RawMessage(`[1]`),
		note(mine.ID, "c", json.RawMessage(strings.Repeat("[", ingest.DefaultMaxDepth+1)+strings.Repeat("]", ingest.DefaultMaxDepth+1))),
		note(uuid.Nil, "d", 1),
		map[string]any{"receiver_id": "nope", "event_type": "t", "idempotency_key": "e", "payload": 1},
		note(mine.ID, "f", 3),
		note(mine.ID, "h", json.RawMessage(strings.Repeat("[", 5000)+strings.Repeat("]", 5000))),
	)
	a.checkResults(first, []want{
		{}, {code: "invalid_field", field: "notifications[1].event_type"},
		{code: "receiver_not_allowed", field: "notifications[2].receiver_id"},
		{replayed: true}, {code: "idempotency_conflict", field: "notifications[4].idempotency_key"},
		{replayed: true}, {code: "idempotency_conflict", field: "notifications[6].idempotency_key"},
		{code: "invalid_field", field: "notifications[7].colour"}, {code: "invalid_field", field: "notifications[8]"},
		{code: "invalid_field", field: "notifications[9].payload"}, {code: "receiver_not_allowed", field: "notifications[10].receiver_id"},
		{code: "invalid_field", field: "notifications[11].receiver_id"}, {},
		{code: "invalid_field", field: "notifications[13].payload"},
	})
	if msg := first.Results[1].Error.Message; msg != "notifications[1].event_type is required" {
		t.Errorf("message %q names the field by its place", msg)
	}
	if id := *first.Results[0].ID; id != tasks.NotificationID(mine.ID, "a") || *first.Results[3].ID != id {
		t.Errorf("key a: ids %s and %s, want both %s", id, *first.Results[3].ID, tasks.NotificationID(mine.ID, "a"))
	}

	// The same batch again: what was recorded replays, what was refused is
	// refused again.
	again := a.sendBatch(token, note(mine.ID, "a", 1), note(mine.ID, "f", 3), note(mine.ID, "f", 4), note(mine.ID, "g", 1))
	a.checkResults(again, []want{{replayed: true}, {replayed: true}, {code: "idempotency_conflict", field: "notifications[2].idempotency_key"}, {}})
	if *again.Results[1].ID != *first.Results[12].ID {
		t.Errorf("key f replayed as %s, recorded as %s", *again.Results[1].ID, *first.Results[12].ID)
	}

	var rows int
	if err := a.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM notifications`).Scan(&rows); err != nil || rows != 4 {
		t.Errorf("%d notifications on record (%v), want 4: single, a, f, g", rows, err)
	}
	replayed := map[uuid.UUID]bool{}
	for _, k := range []string{"single", "a", "f"} {
		replayed[tasks.NotificationID(mine.ID, k)] = true
	}
	a.checkQueuedOnce(4, replayed)
}

// TestIngestManyRefusesTheRequest: what is wrong with the request as a
// whole is its 4xx error, naming the field, and records nothing.
func TestIngestManyRefusesTheRequest(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	many := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf(`{"receiver_id":"%s","event_type":"t","idempotency_key":"k%d","payload":1}`, r.ID, i)
		}
		return `{"notifications":[` + strings.Join(items, ",") + `]}`
	}
	big := `{"notifications":[{"receiver_id":"` + r.ID.String() + `","event_type":"t","idempotency_key":"big","payload":"` +
		strings.Repeat("x", maxBatchBody) + `"}]}`
	tests := []struct {
		name, token, body string
		status            int
		code, field       string
	}{
		{"malformed JSON", testProducerToken, `{"notifications":[`, 400, "invalid_json", ""},
		{"empty body", testProducerToken, ` `, 400, "invalid_json", ""},
		{"no notifications field", testProducerToken, `{}`, 422, "invalid_field", "notifications"},
		{"no notifications", testProducerToken, `{"notifications":[]}`, 422, "invalid_field", "notifications"},
		{"notifications not a list", testProducerToken, `{"notifications":{}}`, 422, "invalid_field", "notifications"},
		{"unknown field", testProducerToken, `{"notifications":[],"dry_run":true}`, 422, "invalid_field", "dry_run"},
		{"one over the count limit", testProducerToken, many(maxIngestBatch + 1), 422, "invalid_field", "notifications"},
		{"body over the size limit", testProducerToken, big, 413, "too_large", "notifications"},
		{"no token", "", many(1), 401, "unauthorized", ""},
		{"a receiver's key", r.APIKey, many(1), 403, "forbidden", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := a.with(t).do("POST", "/v1/notifications/batch", tc.token, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", status, tc.status, raw)
			}
			if e := apiErr(t, raw); e.Code != tc.code || e.Field != tc.field {
				t.Errorf("error %+v, want %s on %q", e, tc.code, tc.field)
			}
		})
	}
	var rows int
	if err := a.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM notifications`).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("%d notifications on record (%v), want none", rows, err)
	}
	// The count limit is inclusive.
	if got := a.sendBatch(testProducerToken, manyNotes(r.ID, maxIngestBatch)...); got.Failed != 0 {
		t.Errorf("a batch of %d: %d failed", maxIngestBatch, got.Failed)
	}
}

func manyNotes(r uuid.UUID, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = note(r, fmt.Sprintf("n%d", i), i)
	}
	return out
}

// TestIngestManyRateLimitCountsNotifications: a batch takes one token per
// notification from its producer's bucket, and one larger than the bucket
// can ever hold is refused as too large rather than told to wait.
func TestIngestManyRateLimitCountsNotifications(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	slow, _ := a.serveWith(func(c *Config) { c.RateLimits = RateLimits{Producer: Rate{PerSecond: 0.01, Burst: 10}} })
	slow.sendBatch(testProducerToken, manyNotes(r.ID, 8)...)
	status, raw := slow.do("POST", "/v1/notifications/batch", testProducerToken, map[string]any{"notifications": manyNotes(r.ID, 3)})
	if e := apiErr(t, raw); status != http.StatusTooManyRequests || e.Code != "rate_limited" {
		t.Errorf("a batch of 3 with 2 tokens left: %d %+v, want 429 rate_limited", status, e)
	}
	status, raw = slow.do("POST", "/v1/notifications/batch", testProducerToken, map[string]any{"notifications": manyNotes(r.ID, 11)})
	if e := apiErr(t, raw); status != http.StatusUnprocessableEntity || e.Field != "notifications" {
		t.Errorf("a batch of 11 with a burst of 10: %d %+v, want 422 on notifications", status, e)
	}
}

// TestIngestManyWithRedisDownIsRedriven: with Redis unreachable, a batch is
// still answered, every notification on record in Postgres, and the
// scheduler's re-drive queues them all once Redis is back, as it does for
// the single endpoint's.
func TestIngestManyWithRedisDownIsRedriven(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	down := *a
	down.rdb = redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { down.rdb.Close() })
	down.queue = asynq.NewClientFromRedisClient(down.rdb)
	off, _ := down.serveWith(func(*Config) {})
	const n = 20
	got := off.sendBatch(testProducerToken, manyNotes(r.ID, n)...)
	a.checkResults(got, make([]want, n))

	sched, err := scheduler.New(a.store, a.queue, scheduler.Config{RedriveGrace: time.Millisecond, Redis: a.rdb,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// Each run queues what is past the grace by then.
	queued := 0
	for deadline := time.Now().Add(5 * time.Second); queued < n && time.Now().Before(deadline); {
		res, err := sched.RunRedrive(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		queued += res.Enqueued
	}
	if queued != n {
		t.Fatalf("the re-drive queued %d, want %d", queued, n)
	}
	a.checkQueuedOnce(n, nil)
}

// TestIngestManyCounts: a batch counts each notification in the ingest
// metrics as the single endpoint does. Not parallel: the counters are the
// process's.
func TestIngestManyCounts(t *testing.T) {
	a := newTestAPI(t)
	r := a.receiver()
	count := func() (accepted, conflicts float64) {
		return counterValue(t, metrics.Accepted, "http"), counterValue(t, metrics.IdempotencyConflicts, "http")
	}
	acceptedBefore, conflictsBefore := count()
	a.checkResults(a.sendBatch(testProducerToken, note(r.ID, "a", 1), note(r.ID, "b", 1), note(r.ID, "a", 1), note(r.ID, "b", 2),
		map[string]any{"receiver_id": r.ID}),
		[]want{{}, {}, {replayed: true}, {code: "idempotency_conflict", field: "notifications[3].idempotency_key"},
			{code: "invalid_field", field: "notifications[4].event_type"}})
	accepted, conflicts := count()
	if accepted-acceptedBefore != 2 || conflicts-conflictsBefore != 1 {
		t.Errorf("notifyd_notifications_accepted_total{source=http} rose by %v, want 2; idempotency conflicts (http) by %v, want 1",
			accepted-acceptedBefore, conflicts-conflictsBefore)
	}
}

func counterValue(t *testing.T, v *prometheus.CounterVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
