package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/notifier"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/worker"
)

const adminToken = "test-admin-token"
const producerToken = "test-producer-token"

// stack is a whole notifyd in one test: API, worker, Go client.
type stack struct {
	t        *testing.T
	store    *store.Store
	rdb      *redis.Client
	api      *httptest.Server
	notifier *notifier.Client
}

type stackOption func(*worker.Config, *query.Config)

func withTimeout(d time.Duration) stackOption {
	return func(w *worker.Config, _ *query.Config) { w.DefaultTimeout = d }
}

func withWorker(f func(*worker.Config)) stackOption {
	return func(w *worker.Config, _ *query.Config) { f(w) }
}

func withTargets(p netguard.Policy) stackOption {
	return func(w *worker.Config, q *query.Config) { w.Targets, q.Targets = p, p }
}

// fastRetry keeps tests short: 3 attempts, 1 s apart, no jitter.
func fastRetry() retry.Policy {
	zero := 0.0
	return retry.Policy{MaxAttempts: 3, Base: time.Second, Factor: 1, MaxInterval: time.Second, Jitter: &zero}
}

func newStack(t *testing.T, opts ...stackOption) *stack {
	t.Helper()
	dsn := testenv.Database(t)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(testenv.Redis(t))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		quiet = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	wcfg := worker.Config{Logger: quiet, Concurrency: 20, Retry: fastRetry(), Targets: netguard.Policy{AllowPrivate: true}, ShutdownTimeout: 5 * time.Second}
	qcfg := query.Config{Logger: quiet, AdminToken: adminToken, ProducerTokens: []string{producerToken}, Retry: fastRetry(), Targets: netguard.Policy{AllowPrivate: true}}
	for _, o := range opts {
		o(&wcfg, &qcfg)
	}
	queue := asynq.NewClientFromRedisClient(rdb)
	api := httptest.NewServer(query.New(st, rdb, queue, qcfg).Handler())
	w := worker.New(st, rdb, wcfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	// One synchronous sync first, so the Go client knows the registry is loaded.
	if states, err := st.ListReceiverStates(ctx); err != nil || registry.Sync(ctx, rdb, states) != nil {
		t.Fatalf("registry sync: %v", err)
	}
	go registry.Keep(ctx, st, rdb, 200*time.Millisecond, quiet)
	n := notifier.NewFromRedisClient(rdb, notifier.WithAllowPrivateTargets(true))
	t.Cleanup(func() {
		cancel()
		<-done
		api.Close()
		n.Close()
		queue.Close()
		rdb.Close()
		st.Close()
	})
	return &stack{t: t, store: st, rdb: rdb, api: api, notifier: n}
}

// call makes an API request with token and decodes the JSON answer into out
// (if not nil). It returns the status code and the raw body.
func (s *stack) call(method, path, token string, body any, out any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.api.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

type createdReceiver struct {
	ID            string `json:"id"`
	APIKey        string `json:"api_key"`
	SigningSecret string `json:"signing_secret"`
}

// receiver registers a receiver via the admin API; extra fields are merged in.
func (s *stack) receiver(callbackURL string, extra map[string]any) createdReceiver {
	s.t.Helper()
	body := map[string]any{"name": "merchant", "callback_url": callbackURL}
	for k, v := range extra {
		body[k] = v
	}
	var r createdReceiver
	if code, raw := s.call("POST", "/v1/receivers", adminToken, body, &r); code != http.StatusCreated {
		s.t.Fatalf("create receiver: %d %s", code, raw)
	}
	return r
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

func statusResponder(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		fmt.Fprintf(w, "answer %d", code)
	}
}

// tWriter sends log lines to the test log (shown with -v or on failure).
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
