package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/lifecycle"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/notifier"
	"github.com/notifyd/notifyd/query/webhook"
)

// eventSink is the operator's and a receiver's status endpoint: it keeps
// the operational events whose signature verifies with the secret set for
// their path, and answers 503 (retried by notifyd) for the others.
type eventSink struct {
	mu        sync.Mutex
	verifiers map[string]*webhook.Verifier
	events    map[string][]sunkEvent
	bad       atomic.Int64
}

type sunkEvent struct {
	Type string
	Data lifecycle.Event
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	v := s.verifiers[r.URL.Path]
	s.mu.Unlock()
	if v == nil {
		http.Error(w, "no secret yet", http.StatusServiceUnavailable)
		return
	}
	e, err := v.Verify(r)
	if err != nil {
		s.bad.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var data lifecycle.Event
	if err := json.Unmarshal(e.Data, &data); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.events[r.URL.Path] = append(s.events[r.URL.Path], sunkEvent{Type: e.Type, Data: data})
	s.mu.Unlock()
}

func (s *eventSink) expect(t *testing.T, path, secret string) {
	t.Helper()
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.verifiers[path] = v
	s.mu.Unlock()
}

// wait returns the first verified event of type typ about receiver at
// path, failing the test after timeout.
func (s *eventSink) wait(t *testing.T, path, typ, receiver string, timeout time.Duration) sunkEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		for _, e := range s.events[path] {
			if e.Type == typ && e.Data.ReceiverID == receiver {
				s.mu.Unlock()
				return e
			}
		}
		got := fmt.Sprint(s.events[path])
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no signed %s about %s at %s within %s; got %s", typ, receiver, path, timeout, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// merchant is the receiver's callback: 500 until healed, counting requests
// per notification id.
type merchant struct {
	healthy atomic.Bool
	mu      sync.Mutex
	hits    map[string]int
}

func (m *merchant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var env struct{ ID string }
	_ = json.NewDecoder(r.Body).Decode(&env)
	m.mu.Lock()
	m.hits[env.ID]++
	m.mu.Unlock()
	if !m.healthy.Load() {
		http.Error(w, "down", http.StatusInternalServerError)
	}
}

func (m *merchant) count(id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits[id]
}

type receiverState struct {
	Status         string     `json:"status"`
	DisabledReason *string    `json:"disabled_reason"`
	DisabledAt     *time.Time `json:"disabled_at"`
	FailingSince   *time.Time `json:"failing_since"`
}

type notificationState struct {
	Status    string `json:"status"`
	LastError string `json:"last_error"`
}

// TestReceiverLifecycle drives a receiver through failing → disabled →
// enabled → recovered against the real binary, with second-scale
// thresholds: each event arrives signed at the operator endpoint (operator
// secret from `notifyd operator-secret`) and at the receiver's own
// status_callback_url (its secret); the pending notification fails with
// receiver_disabled; notifications sent while disabled (HTTP ingest and
// Go client) are accepted and recorded failed without an attempt; recover
// after enable delivers all of them.
func TestReceiverLifecycle(t *testing.T) {
	t.Parallel()
	dsn := testenv.Database(t)
	redisOpt := testenv.Redis(t)
	sink := &eventSink{verifiers: map[string]*webhook.Verifier{}, events: map[string][]sunkEvent{}}
	sinkSrv := httptest.NewServer(sink)
	t.Cleanup(sinkSrv.Close)
	shop := &merchant{hits: map[string]int{}}
	shopSrv := httptest.NewServer(shop)
	t.Cleanup(shopSrv.Close)
	settings := devSettings(t, dsn, redisOpt)
	for k, v := range map[string]string{
		"NOTIFYD_PRODUCER_TOKENS": apitest.ProducerToken,
		"NOTIFYD_FAILING_AFTER":   "2s",
		// More than the workers' receiver cache TTL (10 s) after failing:
		// by the disable, every worker holds the failing receiver for at
		// most 1 s (as with the defaults, 24 h and 120 h).
		"NOTIFYD_AUTO_DISABLE_AFTER": "13s",
		"NOTIFYD_LIFECYCLE_SCHEDULE": "@every 1s",
		// No circuit: a delivery it deferred keeps its task id until the
		// deferral ends, which recover does not cut short (README: "Deliveries
		// already deferred by the open circuit still wait"); this test is
		// about the lifecycle, TestLifecycleJob and the circuit's own tests
		// cover the rest.
		"NOTIFYD_BREAKER_FAILURES":      "-1",
		"NOTIFYD_OPERATOR_CALLBACK_URL": sinkSrv.URL + "/ops",
	} {
		settings[k] = v
	}
	api := apitest.NewClient(t, "http://"+settings["NOTIFYD_HTTP_ADDR"])
	logs, _ := startAll(t, settings)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("notifyd log:\n%s", logs)
		}
	})

	cmd := exec.Command(notifydBinary(t), "operator-secret")
	cmd.Env = withEnv(settings)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.HasPrefix(stdout.String(), "whsec_") {
		t.Fatalf("notifyd operator-secret: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	operatorSecret := strings.TrimSpace(stdout.String())
	sink.expect(t, "/ops", operatorSecret)

	recv := api.CreateReceiver(shopSrv.URL+"/cb", map[string]any{
		"status_callback_url": sinkSrv.URL + "/status",
		"retry":               map[string]any{"max_attempts": 100, "base": "1s", "factor": 1, "max_interval": "1s"},
	})
	sink.expect(t, "/status", recv.SigningSecret)
	start := time.Now()
	send := func(key string) (id, status string) {
		var out struct{ ID, Status string }
		api.Call("POST", "/v1/notifications", apitest.ProducerToken, map[string]any{
			"receiver_id": recv.ID, "event_type": "trade.paid", "idempotency_key": key, "payload": map[string]int{"amount": 1},
		}, http.StatusAccepted, &out)
		return out.ID, out.Status
	}
	receiver := func() receiverState {
		var r receiverState
		api.Call("GET", "/v1/receivers/"+recv.ID, recv.APIKey, nil, http.StatusOK, &r)
		return r
	}
	notification := func(id string) notificationState {
		var n notificationState
		api.Call("GET", "/v1/notifications/"+id, recv.APIKey, nil, http.StatusOK, &n)
		return n
	}
	const wait = 60 * time.Second

	// Down: failing after 2 s of failed attempts, then disabled after 13 s.
	pendingID, _ := send("before-disable")
	for _, path := range []string{"/ops", "/status"} {
		e := sink.wait(t, path, "receiver.failing", recv.ID, wait)
		if e.Data.Status != "failing" || e.Data.PreviousStatus != "active" || e.Data.FailingSince == nil {
			t.Fatalf("receiver.failing at %s: %+v", path, e.Data)
		}
	}
	t.Logf("%s: receiver.failing at both endpoints", time.Since(start))
	disabled := sink.wait(t, "/ops", "receiver.disabled", recv.ID, wait)
	sink.wait(t, "/status", "receiver.disabled", recv.ID, wait)
	r := receiver()
	if r.Status != "disabled" || r.DisabledAt == nil || r.DisabledReason == nil || *r.DisabledReason != disabled.Data.DisabledReason {
		t.Fatalf("disabled receiver as the API shows it: %+v (event %+v)", r, disabled.Data)
	}
	if n := notification(pendingID); n.Status != "failed" || n.LastError != "receiver_disabled" {
		t.Fatalf("the pending notification of the disabled receiver: %+v", n)
	}

	// While disabled: accepted on both paths, failed at once, never
	// attempted (once the workers' copy of a failing receiver, at most 1 s
	// old, has seen the change).
	time.Sleep(1500 * time.Millisecond)
	httpID, httpStatus := send("while-disabled")
	if httpStatus != "failed" {
		t.Fatalf("HTTP ingest while disabled answered status %q, want failed", httpStatus)
	}
	rdb := redis.NewClient(redisOpt)
	t.Cleanup(func() { rdb.Close() })
	producer := notifier.NewFromRedisClient(rdb, notifier.WithAllowPrivateTargets(true))
	t.Cleanup(func() { producer.Close() })
	goID, err := producer.Notify(context.Background(), notifier.Notification{
		ReceiverID: recv.ID, EventType: "trade.paid", IdempotencyKey: "go-while-disabled", Payload: json.RawMessage(`{"amount":2}`),
	})
	if err != nil {
		t.Fatalf("Go client while disabled: %v", err)
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(100 * time.Millisecond) {
		code, raw := api.Do("GET", "/v1/notifications/"+goID, recv.APIKey, nil)
		var n notificationState
		if code == http.StatusOK && json.Unmarshal(raw, &n) == nil && n.Status == "failed" {
			if n.LastError != "receiver_disabled" {
				t.Fatalf("Go client notification while disabled: %+v", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Go client notification while disabled never recorded failed: %d %s", code, raw)
		}
	}
	if n := notification(httpID); n.LastError != "receiver_disabled" || shop.count(httpID)+shop.count(goID) != 0 {
		t.Fatalf("sent while disabled: %+v, attempts %d, %d", n, shop.count(httpID), shop.count(goID))
	}

	t.Logf("%s: disabled; notifications sent meanwhile failed", time.Since(start))
	// A manual redelivery is still made: someone asked for it.
	before := shop.count(pendingID)
	api.Call("POST", "/v1/notifications/"+pendingID+"/redeliver", recv.APIKey, nil, http.StatusAccepted, nil)
	for deadline := time.Now().Add(wait); shop.count(pendingID) == before; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a manual redelivery to the disabled receiver was not made")
		}
	}

	// Healed: the receiver enables itself, then recovers what failed.
	shop.healthy.Store(true)
	var enabled receiverState
	api.Call("POST", "/v1/receivers/"+recv.ID+"/enable", recv.APIKey, nil, http.StatusOK, &enabled)
	if enabled.Status != "failing" || enabled.DisabledAt != nil {
		t.Fatalf("enabled receiver: %+v", enabled)
	}
	sink.wait(t, "/ops", "receiver.enabled", recv.ID, wait)
	sink.wait(t, "/status", "receiver.enabled", recv.ID, wait)
	var rec struct{ Recovered int }
	api.Call("POST", "/v1/receivers/"+recv.ID+"/recover", recv.APIKey,
		map[string]any{"since": start.Add(-time.Minute).UTC().Format(time.RFC3339Nano)}, http.StatusAccepted, &rec)
	if rec.Recovered != 3 {
		t.Fatalf("recover after enable re-opened %d notifications, want 3", rec.Recovered)
	}
	api.WaitStatus(wait, "delivered", pendingID, httpID, goID)
	t.Logf("%s: enabled, recovered notifications delivered", time.Since(start))
	recovered := sink.wait(t, "/ops", "receiver.recovered", recv.ID, wait)
	sink.wait(t, "/status", "receiver.recovered", recv.ID, wait)
	if recovered.Data.Status != "active" || recovered.Data.PreviousStatus != "failing" || recovered.Data.FailingSince != nil {
		t.Fatalf("receiver.recovered: %+v", recovered.Data)
	}
	if r := receiver(); r.Status != "active" || r.FailingSince != nil {
		t.Fatalf("recovered receiver: %+v", r)
	}
	if testing.Verbose() {
		t.Logf("notifyd log:\n%s", logs)
	}
	if strings.Contains(logs.String(), operatorSecret) {
		t.Error("the operator receiver's signing secret is in the log")
	}
	if n := sink.bad.Load(); n != 0 {
		t.Fatalf("%d events did not verify", n)
	}
}
