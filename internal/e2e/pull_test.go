package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/query/client"
	"github.com/notifyd/notifyd/query/webhook"
	"github.com/notifyd/notifyd/worker"
)

// withStreams sets the API's stream settings.
func withStreams(perReceiver int, heartbeat time.Duration) stackOption {
	return func(_ *worker.Config, q *query.Config) {
		q.StreamsPerReceiver, q.StreamHeartbeat = perReceiver, heartbeat
	}
}

// pullReceiver creates a pull receiver with no callback URL whose offers
// are intervals apart.
func (s *stack) pullReceiver(intervals ...string) createdReceiver {
	s.t.Helper()
	return s.receiver("", map[string]any{"delivery": "pull",
		"retry": map[string]any{"max_attempts": len(intervals) + 1, "intervals": intervals}})
}

// eventCheck verifies each streamed event with query/webhook and the
// official Standard Webhooks library, as a receiver would a callback.
type eventCheck struct {
	t        *testing.T
	verifier *webhook.Verifier
	official *standardwebhooks.Webhook
}

func newEventCheck(t *testing.T, secret string) *eventCheck {
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return &eventCheck{t: t, verifier: v, official: wh}
}

func (c *eventCheck) verify(e *client.Event) *webhook.Event {
	c.t.Helper()
	h := http.Header{}
	for k, v := range e.Headers {
		h.Set(k, v)
	}
	if err := c.official.Verify(e.Body, h); err != nil {
		c.t.Fatalf("official Standard Webhooks library rejects stream event %s: %v", e.NotificationID, err)
	}
	we, err := c.verifier.VerifyBody(h, e.Body)
	if err != nil {
		c.t.Fatalf("query/webhook rejects stream event %s: %v", e.NotificationID, err)
	}
	if we.ID != e.NotificationID || h.Get("Content-Type") != "application/json" {
		c.t.Fatalf("event %s: envelope id %s, headers %v", e.NotificationID, we.ID, e.Headers)
	}
	return we
}

// nextEvent reads the stream's next event within a generous time.
func nextEvent(t *testing.T, st *client.Stream) *client.Event {
	t.Helper()
	type result struct {
		e   *client.Event
		err error
	}
	ch := make(chan result, 1)
	go func() { e, err := st.Next(); ch <- result{e, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("stream: %v", r.err)
		}
		return r.e
	case <-time.After(30 * time.Second):
		st.Close()
		t.Fatal("stream: no event within 30 s")
		return nil
	}
}

// TestPullStreamCutAndResumedDeliversEachOnce: a pull receiver reads its
// notifications (HTTP ingest and Go client alike) from the stream, acking
// each; the stream is cut mid-way, more notifications arrive meanwhile, and
// the stream resumed with Last-Event-ID brings every one exactly once.
func TestPullStreamCutAndResumedDeliversEachOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, withStreams(5, 500*time.Millisecond))
	cb := newReceiverServer(t, statusResponder(http.StatusOK))
	// A callback URL that must never be called: pull receivers are not.
	r := s.receiver(cb.URL, map[string]any{"delivery": "pull",
		"retry": map[string]any{"max_attempts": 3, "intervals": []string{"10m", "10m"}}})
	check := newEventCheck(t, r.SigningSecret)
	c := client.New(s.URL, r.APIKey)
	ctx := context.Background()

	want := map[string]bool{}
	sendBatch := func(prefix string, n int) {
		for i := range n {
			key := fmt.Sprintf("%s-%d", prefix, i)
			if i%2 == 0 {
				want[s.send(r.ID, key, map[string]any{"i": i})] = true
			} else {
				want[s.notifyGo(r.ID, key)] = true
			}
		}
	}
	got := map[string]int{}
	receive := func(st *client.Stream) {
		e := nextEvent(t, st)
		we := check.verify(e)
		if e.Attempt != 1 {
			t.Fatalf("event %s: attempt %d, want the first offer", e.NotificationID, e.Attempt)
		}
		got[we.ID]++
		if err := c.Ack(ctx, we.ID); err != nil {
			t.Fatalf("ack %s: %v", we.ID, err)
		}
	}

	sendBatch("before", 10)
	st, err := c.Stream(ctx, client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		receive(st)
	}
	resumeFrom := st.LastEventID()
	if resumeFrom == "" {
		t.Fatal("five events and no event id to resume from")
	}
	st.Close() // cut mid-way

	sendBatch("during", 10) // while nobody listens
	st, err = c.Stream(ctx, client.StreamOptions{LastEventID: resumeFrom})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for range 5 + 10 {
		receive(st)
	}
	sendBatch("after", 6) // live
	for range 6 {
		receive(st)
	}

	for id := range want {
		if got[id] != 1 {
			t.Errorf("notification %s received %d times, want 1", id, got[id])
		}
	}
	if len(got) != len(want) {
		t.Errorf("received %d distinct notifications, sent %d", len(got), len(want))
	}
	for id := range want {
		n := s.waitStatus(id, store.StatusDelivered, 10*time.Second)
		as := s.attempts(id)
		if n.DeliveredAt == nil || len(as) == 0 || as[0].AttemptNo != 1 || as[0].Outcome != store.OutcomeOffered {
			t.Errorf("notification %s: delivered_at %v, attempts %+v; want delivered with attempt 1 offered", id, n.DeliveredAt, as)
		}
	}
	if len(cb.Hits()) != 0 {
		t.Errorf("the pull receiver's callback URL got %d requests, want none", len(cb.Hits()))
	}
}

// TestPullUnacknowledgedIsRemindedThenFails: an offer nobody acknowledges
// comes again on the stream at the schedule's times, without an id, and
// the notification ends failed after the last one, as a push notification
// does after its last attempt. A late ack still delivers it.
func TestPullUnacknowledgedIsRemindedThenFails(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.pullReceiver("1s", "1s")
	check := newEventCheck(t, r.SigningSecret)
	c := client.New(s.URL, r.APIKey)
	offeredBefore := counterValue(metrics.Attempts, store.OutcomeOffered)
	st, err := c.Stream(context.Background(), client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id := s.send(r.ID, "never-acked", map[string]any{"amount": 1})

	var attempts []int
	for len(attempts) < 3 {
		e := nextEvent(t, st)
		check.verify(e)
		if e.NotificationID != id {
			t.Fatalf("event for %s, want %s", e.NotificationID, id)
		}
		if (e.ID != "") != (len(attempts) == 0) {
			t.Errorf("event %d has id %q: only the first offer moves the position", len(attempts)+1, e.ID)
		}
		if e.Headers[worker.HeaderAttempt] != fmt.Sprint(e.Attempt) {
			t.Errorf("headers %v, attempt %d", e.Headers, e.Attempt)
		}
		attempts = append(attempts, e.Attempt)
	}
	if !slices.Equal(attempts, []int{1, 2, 3}) {
		t.Errorf("offers on the stream: attempts %v, want [1 2 3]", attempts)
	}
	n := s.waitStatus(id, store.StatusFailed, 20*time.Second)
	if n.LastError == nil || *n.LastError != "not_acknowledged" || n.Attempts != 3 {
		t.Errorf("failed notification: %+v", n)
	}
	var outcomes []string
	for _, a := range s.attempts(id) {
		outcomes = append(outcomes, fmt.Sprint(a.AttemptNo, a.Outcome))
	}
	if !slices.Equal(outcomes, []string{"1offered", "2offered", "3offered"}) {
		t.Errorf("attempts on record: %v", outcomes)
	}
	// Offers are not the receiver's answers: they start no run of failures
	// that would mark it failing, then disable it (Receiver lifecycle).
	var failingSince *time.Time
	if err := s.store.Pool().QueryRow(context.Background(), `SELECT failing_since FROM receivers WHERE id = $1`, r.ID).Scan(&failingSince); err != nil {
		t.Fatal(err)
	}
	if failingSince != nil {
		t.Errorf("unacknowledged offers set the pull receiver's failing_since to %s", failingSince)
	}
	// Other tests run alongside and offer too: at least these three.
	if d := counterValue(metrics.Attempts, store.OutcomeOffered) - offeredBefore; d < 3 {
		t.Errorf("delivery_attempts_total{outcome=offered} grew by %v, want at least 3", d)
	}
	// A manual redelivery of the failed notification is one more offer on
	// the stream, numbered as manual attempts are.
	if code, raw := s.call("POST", "/v1/notifications/"+id+"/redeliver", r.APIKey, nil, nil); code != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s", code, raw)
	}
	if e := nextEvent(t, st); e.NotificationID != id || e.Attempt != -1 || e.ID != "" {
		t.Errorf("after redeliver: event %+v, want %s attempt -1 without an id", e, id)
	} else {
		check.verify(e)
	}
	// Recovering the receiver's failed notifications gives this one one
	// more offer (attempt 4) on the stream, like one more attempt for a
	// push receiver.
	var rec struct{ Recovered int }
	if code, raw := s.call("POST", "/v1/receivers/"+r.ID+"/recover", r.APIKey, map[string]any{
		"since": time.Now().Add(-time.Hour).Format(time.RFC3339)}, &rec); code != http.StatusAccepted || rec.Recovered != 1 {
		t.Fatalf("recover: %d %s", code, raw)
	}
	if e := nextEvent(t, st); e.NotificationID != id || e.Attempt != 4 || e.ID != "" {
		t.Errorf("after recover: event %+v, want %s attempt 4 without an id", e, id)
	}
	// Processed late after all (found by reconciliation, say): the ack
	// still counts.
	if err := c.Ack(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	s.waitStatus(id, store.StatusDelivered, 5*time.Second)
}

// TestPullAckAndStreamRefusals: who may ack and stream what, and how
// mistakes are answered.
func TestPullAckAndStreamRefusals(t *testing.T) {
	t.Parallel()
	s := newStack(t, withStreams(1, time.Second))
	a := s.pullReceiver("10m")
	b := s.pullReceiver("10m")
	cb := newReceiverServer(t, statusResponder(http.StatusOK))
	push := s.receiver(cb.URL, nil)
	idA := s.send(a.ID, "a-1", map[string]any{"n": 1})
	idB := s.send(b.ID, "b-1", map[string]any{"n": 2})
	idPush := s.send(push.ID, "p-1", map[string]any{"n": 3})
	s.waitStatus(idPush, store.StatusDelivered, 10*time.Second)

	cases := []struct {
		name, method, path, token string
		body                      any
		code                      int
		want                      string // the error code, or a piece of the answer
	}{
		{"another receiver's notification", "POST", "/v1/notifications/" + idB + "/ack", a.APIKey, nil, 404, "not_found"},
		{"unknown id", "POST", "/v1/notifications/00000000-0000-0000-0000-000000000001/ack", a.APIKey, nil, 404, "not_found"},
		{"push receiver", "POST", "/v1/notifications/" + idPush + "/ack", push.APIKey, nil, 409, "delivery_not_pull"},
		{"admin", "POST", "/v1/notifications/" + idA + "/ack", adminToken, nil, 403, "forbidden"},
		{"own", "POST", "/v1/notifications/" + idA + "/ack", a.APIKey, nil, 200, `"status":"delivered"`},
		{"own again", "POST", "/v1/notifications/" + idA + "/ack", a.APIKey, nil, 200, `"status":"delivered"`},
		{"batch", "POST", "/v1/notifications/ack", a.APIKey, map[string]any{"ids": []string{idA, idB, idA}}, 200,
			`{"acknowledged":["` + idA + `"],"cancelled":[],"not_found":["` + idB + `"]}`},
		{"batch bad id", "POST", "/v1/notifications/ack", a.APIKey, map[string]any{"ids": []string{idA, "x"}}, 422, `"field":"ids[1]"`},
		{"batch empty", "POST", "/v1/notifications/ack", a.APIKey, map[string]any{"ids": []string{}}, 422, `"field":"ids"`},
		{"stream of a push receiver", "GET", "/v1/notifications/stream", push.APIKey, nil, 409, "delivery_not_pull"},
		{"stream for the admin", "GET", "/v1/notifications/stream", adminToken, nil, 403, "forbidden"},
		{"stream with a bad Last-Event-ID", "GET", "/v1/notifications/stream?last_event_id=nope", a.APIKey, nil, 400, `"field":"last_event_id"`},
		{"pull receiver's callback_url cleared without delivery", "PATCH", "/v1/receivers/" + push.ID, adminToken,
			map[string]any{"callback_url": ""}, 422, `"field":"callback_url"`},
		{"switch to push without a URL", "PATCH", "/v1/receivers/" + a.ID, adminToken,
			map[string]any{"delivery": "push"}, 422, `"field":"callback_url"`},
		{"bad delivery", "PATCH", "/v1/receivers/" + a.ID, adminToken, map[string]any{"delivery": "poll"}, 422, `"field":"delivery"`},
		{"receiver shows its delivery", "GET", "/v1/receivers/" + a.ID, a.APIKey, nil, 200, `"delivery":"pull"`},
	}
	deliveredBefore := counterValue(metrics.Terminal, store.StatusDelivered)
	for _, tc := range cases {
		code, raw := s.call(tc.method, tc.path, tc.token, tc.body, nil)
		if code != tc.code || !strings.Contains(string(raw), tc.want) {
			t.Errorf("%s: %d %s, want %d with %s", tc.name, code, raw, tc.code, tc.want)
		}
	}

	if d := counterValue(metrics.Terminal, store.StatusDelivered) - deliveredBefore; d < 1 {
		t.Errorf("notifications_terminal_total{status=delivered} grew by %v after an ack, want at least 1", d)
	}

	// One stream per receiver here: a second one is refused, and freed
	// once the first closes.
	c := client.New(s.URL, b.APIKey)
	st, err := c.Stream(context.Background(), client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream(context.Background(), client.StreamOptions{}); !isAPIError(err, 429, "too_many_streams") {
		t.Errorf("second stream: %v, want 429 too_many_streams", err)
	}
	st.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = c.Stream(context.Background(), client.StreamOptions{})
		if err == nil {
			st.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream after the first closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isAPIError(err error, status int, code string) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.StatusCode == status && ae.Code == code
}

// TestPullStreamOutlivesTheRequestDeadline: a stream is not cut by the
// API's request deadline; it carries heartbeats and live offers past it,
// and ends (io.EOF for the client) when the API shuts down.
func TestPullStreamOutlivesTheRequestDeadline(t *testing.T) {
	t.Parallel()
	s := newStack(t, withStreams(5, 200*time.Millisecond), func(_ *worker.Config, q *query.Config) {
		q.RequestTimeout = time.Second
	})
	r := s.pullReceiver("10m")
	c := client.New(s.URL, r.APIKey)
	st, err := c.Stream(context.Background(), client.StreamOptions{IdleTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(2500 * time.Millisecond) // well past the 1 s request deadline
		s.send(r.ID, "late", map[string]any{"n": 1})
	}()
	e := nextEvent(t, st)
	wg.Wait()
	if e.Attempt != 1 || e.ID == "" {
		t.Errorf("event %+v", e)
	}
}

// servedAPI is an API process on its own listener, run by Serve with the
// production server's timeouts (the stack's API runs on httptest).
type servedAPI struct {
	url    string
	cancel context.CancelFunc
	done   chan error
}

func serveAPI(t *testing.T, s *stack, cfg query.Config) *servedAPI {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	queue := asynq.NewClientFromRedisClient(s.rdb)
	t.Cleanup(func() { queue.Close() })
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := query.New(s.store, s.rdb, queue, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &servedAPI{url: "http://" + ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- srv.Serve(ctx, ln) }()
	return a
}

// TestPullStreamEndsOnShutdown: an API process that stops ends its
// streams (clients reconnect elsewhere with Last-Event-ID) instead of
// waiting out its shutdown timeout for them.
func TestPullStreamEndsOnShutdown(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.pullReceiver("10m")
	api := serveAPI(t, s, query.Config{})
	st, err := client.New(api.url, r.APIKey).Stream(context.Background(), client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	next := make(chan error, 1)
	go func() { _, err := st.Next(); next <- err }()
	api.cancel()
	select {
	case err := <-api.done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(12 * time.Second):
		t.Fatal("the API did not stop within 12 s with a stream open")
	}
	if err := <-next; !errors.Is(err, io.EOF) {
		t.Errorf("stream after shutdown: %v, want io.EOF", err)
	}
}

// TestPullStreamOutlivesServerTimeouts: the HTTP server's write timeout
// (request timeout + 30 s, an absolute deadline on the whole answer) does
// not cut a stream: each write sets its own. (Its read timeout, 30 s, does
// not apply once a request without a body is being answered.)
func TestPullStreamOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.pullReceiver("10m")
	api := serveAPI(t, s, query.Config{RequestTimeout: time.Second, StreamHeartbeat: 5 * time.Second})
	st, err := client.New(api.url, r.APIKey).Stream(context.Background(), client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	time.Sleep(33 * time.Second)
	id := s.send(r.ID, "after-the-timeouts", map[string]any{"n": 1})
	if e := nextEvent(t, st); e.NotificationID != id {
		t.Errorf("event for %s, want %s", e.NotificationID, id)
	}
}

// TestPullStreamCatchesUpWithoutAnnouncement: a notification whose offer
// is never announced (the announcement lost, or no worker has run yet)
// still reaches an open stream, by the catch-up on the next heartbeat.
func TestPullStreamCatchesUpWithoutAnnouncement(t *testing.T) {
	t.Parallel()
	s := newStack(t, withStreams(5, 300*time.Millisecond))
	r := s.pullReceiver("10m")
	st, err := client.New(s.URL, r.APIKey).Stream(context.Background(), client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	time.Sleep(time.Second) // past the connection's first catch-up
	// Written straight into Postgres: no task, so no worker offers it.
	n, _, err := s.store.InsertNotification(context.Background(), store.NewNotification{
		ID: uuid.New(), ReceiverID: uuid.MustParse(r.ID), EventType: "trade.paid", IdempotencyKey: "unannounced",
		Payload: []byte(`{"n":1}`), MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, st)
	newEventCheck(t, r.SigningSecret).verify(e)
	if e.NotificationID != n.ID.String() || e.ID == "" {
		t.Errorf("event %+v, want %s with an id", e, n.ID)
	}
}

// TestPullResumedStreamResendsUnacknowledged: an event received but not
// acknowledged before the connection broke comes again, as a reminder (no
// id), when the stream resumes from it; an acknowledged one does not.
func TestPullResumedStreamResendsUnacknowledged(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	r := s.pullReceiver("10m")
	c := client.New(s.URL, r.APIKey)
	acked := s.send(r.ID, "acked", map[string]any{"n": 1})
	s.waitOffered(acked)
	unacked := s.send(r.ID, "unacked", map[string]any{"n": 2})
	s.waitOffered(unacked)
	st, err := c.Stream(context.Background(), client.StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first, second := nextEvent(t, st), nextEvent(t, st)
	st.Close()
	if first.NotificationID != acked || second.NotificationID != unacked {
		t.Fatalf("events for %s, %s; want %s, %s", first.NotificationID, second.NotificationID, acked, unacked)
	}
	if err := c.Ack(context.Background(), acked); err != nil {
		t.Fatal(err)
	}
	st, err = c.Stream(context.Background(), client.StreamOptions{LastEventID: second.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	again := nextEvent(t, st)
	if again.NotificationID != unacked || again.ID != "" {
		t.Errorf("resumed stream sent %+v, want %s again without an id", again, unacked)
	}
	// Nothing else follows: a later notification is the next event.
	later := s.send(r.ID, "later", map[string]any{"n": 3})
	if e := nextEvent(t, st); e.NotificationID != later {
		t.Errorf("next event %s, want the later notification %s", e.NotificationID, later)
	}
}

// waitOffered waits until the notification's first offer is on record.
func (s *stack) waitOffered(id string) {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(s.attempts(id)) == 0 {
		if time.Now().After(deadline) {
			s.t.Fatalf("notification %s never offered", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
