package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/taskauth"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/notifier"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/worker"
)

func taskKeySpec(pairs ...string) string {
	var items []string
	for _, id := range pairs {
		items = append(items, id+":"+base64.StdEncoding.EncodeToString([]byte(strings.Repeat(id, 32)[:32])))
	}
	return strings.Join(items, ",")
}

func mustKeys(t *testing.T, spec string) *taskauth.Keyring {
	t.Helper()
	k, err := taskauth.Parse(spec)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func withTaskKeys(k *taskauth.Keyring) stackOption {
	return func(w *worker.Config, q *query.Config) { w.TaskKeys, q.TaskKeys = k, k }
}

// dropped reads tasks_dropped_total for reason.
func dropped(reason string) float64 { return counterValue(metrics.Dropped.WithLabelValues(reason)) }

// counterValue reads a counter of the process's metrics.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// TestRedisWriterCannotForgeTasks writes tasks straight into Redis as an
// attacker with Redis access would (no key, a wrong key, an altered payload,
// a forged id, a foreign callback host) and shows that none reaches a
// receiver, each counted by reason; while correctly signed tasks (old key
// during a rotation, new key, the API's and the worker's own retries) are
// delivered.
func TestRedisWriterCannotForgeTasks(t *testing.T) {
	ring := mustKeys(t, taskKeySpec("k2", "k1")) // k2 signs, k1 still verifies
	s := newStack(t, withTaskKeys(ring))
	rcv := newReceiverServer(t, statusResponder(http.StatusOK))
	evil := newReceiverServer(t, statusResponder(http.StatusOK))
	r := s.receiver(rcv.URL, map[string]any{"callback_hosts": []string{"localhost"}})
	rid := uuid.MustParse(r.ID)
	raw := asynq.NewClientFromRedisClient(s.rdb)
	t.Cleanup(func() { raw.Close() })

	task := func(key string, mut func(*tasks.Deliver)) tasks.Deliver {
		d := tasks.Deliver{ID: tasks.NotificationID(rid, key), ReceiverID: rid, EventType: "trade.paid",
			IdempotencyKey: key, Payload: json.RawMessage(`{"amount":100}`), EnqueuedAt: time.Now(), Attempt: 1}
		if mut != nil {
			mut(&d)
		}
		return d
	}
	put := func(d tasks.Deliver, keys *taskauth.Keyring, alter func([]byte) []byte) {
		t.Helper()
		tk, err := d.Task(keys)
		if err != nil {
			t.Fatal(err)
		}
		if alter != nil {
			tk = asynq.NewTask(tk.Type(), alter(tk.Payload()), asynq.TaskID(d.TaskID()), asynq.Queue(d.Queue()))
		}
		if _, err := raw.EnqueueContext(context.Background(), tk); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]float64{}
	reasons := []string{"unsigned", "bad_signature", "id_mismatch", "callback_host"}
	for _, reason := range reasons {
		before[reason] = dropped(reason)
	}
	put(task("no-key", nil), nil, nil)
	put(task("wrong-key", nil), mustKeys(t, "k2:"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))), nil)
	put(task("altered", nil), ring, func(p []byte) []byte { return bytes.Replace(p, []byte(`100`), []byte(`999`), 1) })
	put(task("forged-id", func(d *tasks.Deliver) { d.ID = uuid.New() }), ring, nil)
	put(task("foreign-host", func(d *tasks.Deliver) { d.CallbackURL = evil.URL + "/steal" }), ring, nil)
	// Signed correctly, with the old key still in the ring: delivered.
	good := task("old-key", nil)
	put(good, mustKeys(t, taskKeySpec("k1")), nil)

	s.waitStatus(good.ID.String(), "delivered", 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for _, reason := range reasons {
		for dropped(reason)-before[reason] < 1 {
			if time.Now().After(deadline) {
				t.Fatalf("no task dropped for %s", reason)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, reason := range []string{"unsigned", "bad_signature"} {
		if got := dropped(reason) - before[reason]; got != map[string]float64{"unsigned": 1, "bad_signature": 2}[reason] {
			t.Errorf("dropped %s: %v", reason, got)
		}
	}
	if n := len(evil.Hits()); n != 0 {
		t.Fatalf("the foreign callback host got %d requests", n)
	}
	if hits := rcv.Hits(); len(hits) != 1 || !bytes.Contains(hits[0].body, []byte(`"old-key"`)) {
		t.Fatalf("receiver got %d requests, want only the signed one", len(hits))
	}
	for _, key := range []string{"no-key", "wrong-key", "altered", "foreign-host"} {
		if _, err := s.store.GetNotification(context.Background(), tasks.NotificationID(rid, key)); err == nil {
			t.Errorf("refused task %q was recorded", key)
		}
	}
}

// TestSignedProducersDeliver: the Go client signs with the newest key, the
// HTTP ingest signs, the worker signs the retry it schedules and the API
// signs a redelivery; all are delivered by a worker that requires signatures.
func TestSignedProducersDeliver(t *testing.T) {
	ring := mustKeys(t, taskKeySpec("k2", "k1"))
	s := newStack(t, withTaskKeys(ring))
	rcv := newReceiverServer(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError) // the first attempt fails: a retry follows
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	r := s.receiver(rcv.URL, nil)
	id := s.send(r.ID, "http-1", map[string]any{"amount": 1})
	s.waitStatus(id, "delivered", 15*time.Second)
	if n := len(s.attempts(id)); n != 2 {
		t.Fatalf("attempts = %d, want 2 (a failure, then the worker's signed retry)", n)
	}

	key, err := notifier.ParseTaskKey(taskKeySpec("k2", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	n := notifier.NewFromRedisClient(s.rdb, notifier.WithAllowPrivateTargets(true), notifier.WithTaskKey(key))
	t.Cleanup(func() { n.Close() })
	goID, err := n.Notify(context.Background(), notifier.Notification{ReceiverID: r.ID, EventType: "trade.paid",
		IdempotencyKey: "go-1", Payload: json.RawMessage(`{"amount":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	s.waitStatus(goID, "delivered", 10*time.Second)

	before := len(rcv.Hits())
	if code, raw := s.call("POST", "/v1/notifications/"+goID+"/redeliver", adminToken, nil, nil); code != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s", code, raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(rcv.Hits()) == before {
		if time.Now().After(deadline) {
			t.Fatal("the signed redelivery was not delivered")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCallbackHosts: a receiver's callback_hosts is shown and changed by the
// admin API, and an override outside it is refused at ingest (422 naming
// callback_url) and by the Go client (typed error); one inside is accepted.
func TestCallbackHosts(t *testing.T) {
	s := newStack(t)
	rcv := newReceiverServer(t, statusResponder(http.StatusOK))
	r := s.receiver(rcv.URL, map[string]any{"callback_hosts": []string{"localhost", "*.example.com"}})
	var got struct {
		CallbackHosts []string `json:"callback_hosts"`
	}
	s.call("GET", "/v1/receivers/"+r.ID, adminToken, nil, &got)
	if strings.Join(got.CallbackHosts, ",") != "localhost,*.example.com" {
		t.Fatalf("callback_hosts = %v", got.CallbackHosts)
	}
	for _, tc := range []struct {
		name  string
		hosts any
		want  int
	}{
		{"bad pattern", []string{"https://x.com"}, http.StatusUnprocessableEntity},
		{"wildcard too wide", []string{"*.com"}, http.StatusUnprocessableEntity},
		{"not a list", "localhost", http.StatusUnprocessableEntity},
	} {
		if code, raw := s.call("PATCH", "/v1/receivers/"+r.ID, adminToken, map[string]any{"callback_hosts": tc.hosts}, nil); code != tc.want || !strings.Contains(string(raw), "callback_hosts") {
			t.Errorf("%s: %d %s", tc.name, code, raw)
		}
	}

	ingest := func(key, url string) (int, []byte) {
		return s.call("POST", "/v1/notifications", producerToken, map[string]any{"receiver_id": r.ID,
			"event_type": "t", "idempotency_key": key, "callback_url": url, "payload": map[string]any{}}, nil)
	}
	foreign := strings.Replace(rcv.URL, "127.0.0.1", "127.0.0.2", 1) + "/steal"
	// 422 invalid_field naming the field, like every refused field of the API.
	if code, raw := ingest("h-1", foreign); code != http.StatusUnprocessableEntity || !strings.Contains(string(raw), `"field":"callback_url"`) {
		t.Fatalf("foreign override at ingest: %d %s", code, raw)
	}
	allowed := strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1) + "/other"
	if code, raw := ingest("h-2", allowed); code != http.StatusAccepted {
		t.Fatalf("allowed override at ingest: %d %s", code, raw)
	}

	_, err := s.notifier.Notify(context.Background(), notifier.Notification{ReceiverID: r.ID, EventType: "t",
		IdempotencyKey: "g-1", CallbackURL: foreign, Payload: json.RawMessage(`{}`)})
	var ve *notifier.ValidationError
	if !errors.Is(err, notifier.ErrCallbackHostNotAllowed) || !errors.As(err, &ve) || ve.Field != "callback_url" {
		t.Fatalf("Go client, foreign override: err = %v", err)
	}
	if _, err := s.notifier.Notify(context.Background(), notifier.Notification{ReceiverID: r.ID, EventType: "t",
		IdempotencyKey: "g-2", CallbackURL: allowed, Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatalf("Go client, allowed override: %v", err)
	}

	// An empty list allows no override; null lifts the restriction.
	s.call("PATCH", "/v1/receivers/"+r.ID, adminToken, map[string]any{"callback_hosts": []string{}}, nil)
	if code, raw := ingest("h-3", allowed); code != http.StatusUnprocessableEntity {
		t.Fatalf("empty list, override: %d %s", code, raw)
	}
	s.call("PATCH", "/v1/receivers/"+r.ID, adminToken, map[string]any{"callback_hosts": nil}, &got)
	if got.CallbackHosts != nil {
		t.Fatalf("after null: callback_hosts = %v", got.CallbackHosts)
	}
	if code, raw := ingest("h-4", foreign); code != http.StatusAccepted {
		t.Fatalf("unrestricted override: %d %s", code, raw)
	}
}

// TestRestrictedCallbackHostFailsPendingNotification: a notification
// accepted with a callback override, still pending when its receiver then
// restricts callback_hosts, ends failed with last error
// callback_host_not_allowed at its next attempt instead of staying pending
// (and being re-driven) for ever; the refused attempt is never sent.
func TestRestrictedCallbackHostFailsPendingNotification(t *testing.T) {
	s := newStack(t)
	rcv := newReceiverServer(t, statusResponder(http.StatusInternalServerError))
	// The retry comes after the worker's receiver cache (10 s) expired.
	r := s.receiver(rcv.URL, map[string]any{"retry": map[string]any{"intervals": []string{"11s", "11s"}}})
	override := strings.Replace(rcv.URL, "127.0.0.1", "localhost", 1) + "/other"
	var accepted struct{ ID string }
	if code, raw := s.call("POST", "/v1/notifications", producerToken, map[string]any{"receiver_id": r.ID,
		"event_type": "t", "idempotency_key": "k-1", "callback_url": override, "payload": map[string]any{}}, &accepted); code != http.StatusAccepted {
		t.Fatalf("ingest: %d %s", code, raw)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.attempts(accepted.ID)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no first attempt")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, raw := s.call("PATCH", "/v1/receivers/"+r.ID, adminToken, map[string]any{"callback_hosts": []string{}}, nil); code != http.StatusOK {
		t.Fatalf("restrict: %d %s", code, raw)
	}
	n := s.waitStatus(accepted.ID, "failed", 30*time.Second)
	if n.LastError == nil || *n.LastError != "callback_host_not_allowed" || n.Attempts != 1 {
		t.Fatalf("failed with last_error %v after %d attempts, want callback_host_not_allowed after 1", n.LastError, n.Attempts)
	}
	if got := len(rcv.Hits()); got != 1 {
		t.Fatalf("receiver got %d requests, want only the first attempt", got)
	}
}
