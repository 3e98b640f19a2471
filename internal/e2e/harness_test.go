package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/notifier"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/worker"
)

const (
	adminToken    = apitest.AdminToken
	producerToken = apitest.ProducerToken
)

// stack is a whole notifyd in one test: API, worker, Go client.
type stack struct {
	*notifydtest.Stack
	t        *testing.T
	store    *store.Store
	rdb      *redis.Client
	notifier *notifier.Client
}

type stackOption = notifydtest.Option

var (
	withWorker  = notifydtest.WithWorker
	withTargets = notifydtest.WithTargets
)

func withTimeout(d time.Duration) stackOption {
	return withWorker(func(w *worker.Config) { w.DefaultTimeout = d })
}

// newStack runs the service as production does, circuit breaker included,
// with 20 workers and notifydtest's fast retry schedule.
func newStack(t *testing.T, opts ...stackOption) *stack {
	t.Helper()
	defaults := func(w *worker.Config, _ *query.Config) { w.Concurrency, w.Breaker = 20, worker.BreakerConfig{} }
	s := notifydtest.Start(t, append([]stackOption{defaults}, opts...)...)
	n := notifier.NewFromRedisClient(s.Redis, notifier.WithAllowPrivateTargets(true))
	t.Cleanup(func() { n.Close() })
	return &stack{Stack: s, t: t, store: s.Store, rdb: s.Redis, notifier: n}
}

// call makes an API request with token and decodes a 2xx JSON answer into
// out (if not nil). It returns the status code and the raw body.
func (s *stack) call(method, path, token string, body any, out any) (int, []byte) {
	s.t.Helper()
	code, raw, err := s.Try(method, path, token, body, out)
	if err != nil {
		s.t.Fatal(err)
	}
	return code, raw
}

type createdReceiver = apitest.Receiver

// receiver registers a receiver via the admin API; extra fields are merged in.
func (s *stack) receiver(callbackURL string, extra map[string]any) createdReceiver {
	s.t.Helper()
	return s.CreateReceiver(callbackURL, extra)
}

// send ingests a notification over HTTP and returns its id.
func (s *stack) send(receiverID, key string, payload any) string {
	s.t.Helper()
	var out struct{ ID string }
	code, raw := s.call("POST", "/v1/notifications", producerToken, map[string]any{
		"receiver_id": receiverID, "event_type": "trade.paid", "idempotency_key": key, "payload": payload,
	}, &out)
	if code != http.StatusAccepted {
		s.t.Fatalf("ingest: %d %s", code, raw)
	}
	return out.ID
}

// notifyGo sends through the Go client.
func (s *stack) notifyGo(receiverID, key string) string {
	s.t.Helper()
	id, err := s.notifier.Notify(context.Background(), notifier.Notification{
		ReceiverID: receiverID, EventType: "trade.paid", IdempotencyKey: key, Payload: json.RawMessage(`{"amount":100}`),
	})
	if err != nil {
		s.t.Fatalf("notify: %v", err)
	}
	return id
}

// waitStatus polls Postgres until the notification has status (or fails the
// test after timeout) and returns it.
func (s *stack) waitStatus(id, status string, timeout time.Duration) *store.Notification {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *store.Notification
	for time.Now().Before(deadline) {
		n, err := s.store.GetNotification(context.Background(), uuid.MustParse(id))
		if err == nil {
			last = n
			if n.Status == status {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("notification %s: want status %s, last seen %+v", id, status, last)
	return nil
}

func (s *stack) attempts(id string) []store.Attempt {
	s.t.Helper()
	as, err := s.store.ListAttempts(context.Background(), uuid.MustParse(id))
	if err != nil {
		s.t.Fatal(err)
	}
	return as
}

// hit is one request a test receiver got.
type hit struct {
	at     time.Time
	header http.Header
	body   []byte
}

// receiverServer is a programmable callback endpoint on loopback.
type receiverServer struct {
	*httptest.Server
	mu   sync.Mutex
	hits []hit
	// respond is called with the 1-based request number.
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiverServer(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiverServer {
	rs := &receiverServer{respond: respond}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		rs.hits = append(rs.hits, hit{at: time.Now(), header: r.Header.Clone(), body: body})
		n := len(rs.hits)
		rs.mu.Unlock()
		rs.respond(n, w, r)
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *receiverServer) Hits() []hit {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]hit(nil), rs.hits...)
}

// hitsByID counts the requests a receiver got per notification id.
func hitsByID(t *testing.T, rs *receiverServer) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, h := range rs.Hits() {
		var env struct{ ID string }
		if err := json.Unmarshal(h.body, &env); err != nil {
			t.Fatalf("receiver got %s: %v", h.body, err)
		}
		out[env.ID]++
	}
	return out
}

func statusResponder(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d", code)
	}
}
