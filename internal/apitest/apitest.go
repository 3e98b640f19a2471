// Package apitest starts a real notifyd (HTTP API on httptest plus a
// delivery worker) on the test's own Postgres database and Redis index, for
// the tests of packages that talk to the API from outside: the Go API client
// and notifyctl. internal/e2e has the fuller harness for the service itself.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/worker"
)

// Tokens the stack accepts.
const (
	AdminToken    = "apitest-admin-token"
	ProducerToken = "apitest-producer-token"
)

// Stack is one notifyd for one test.
type Stack struct {
	// URL is the API's base URL.
	URL   string
	Store *store.Store
	// Redis is the test's own Redis database, shared by API and worker.
	Redis *redis.Client
	t     testing.TB
}

// FastRetry is the stack's default policy: 3 attempts 1 s apart, no jitter.
func FastRetry() retry.Policy {
	zero := 0.0
	return retry.Policy{MaxAttempts: 3, Base: time.Second, Factor: 1, MaxInterval: time.Second, Jitter: &zero}
}

// Option adjusts the worker's and the API's configuration before start.
type Option func(*worker.Config, *query.Config)

// WithBreaker turns the worker's circuit breaker on (default settings
// unless given).
func WithBreaker(b worker.BreakerConfig) Option {
	return func(w *worker.Config, _ *query.Config) { w.Breaker = b }
}

// Start runs an API and a worker until the test ends. Callback targets on
// loopback are allowed; the worker's circuit breaker is off unless an option
// turns it on. Logs go to the test log with -v and are discarded otherwise.
func Start(t testing.TB, opts ...Option) *Stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, testenv.Database(t))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	rdb := redis.NewClient(testenv.Redis(t))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	targets := netguard.Policy{AllowPrivate: true}
	wcfg := worker.Config{
		Logger: logger, Concurrency: 10, Retry: FastRetry(), Targets: targets, ShutdownTimeout: 5 * time.Second,
		// Tests simulate receiver outages to exercise the API and its
		// clients; the breaker would defer those attempts for its cool-down.
		Breaker: worker.BreakerConfig{Failures: -1},
	}
	qcfg := query.Config{Logger: logger, AdminToken: AdminToken, ProducerTokens: []string{ProducerToken}, Retry: FastRetry(), Targets: targets}
	for _, o := range opts {
		o(&wcfg, &qcfg)
	}
	// One synchronous registry sync first, so the Go client knows the
	// registry is loaded; then keep it fresh as receivers are created.
	states, err := st.ListReceiverStates(ctx)
	if err == nil {
		err = registry.Sync(ctx, rdb, states)
	}
	if err != nil {
		cancel()
		t.Fatalf("apitest: registry sync: %v", err)
	}
	go registry.Keep(ctx, st, rdb, 200*time.Millisecond, logger)
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
	t.Cleanup(func() {
		cancel()
		<-done
		api.Close()
		queue.Close()
		rdb.Close()
		st.Close()
	})
	return &Stack{URL: api.URL, Store: st, Redis: rdb, t: t}
}

// testLog sends log lines to the test log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// Receiver is a receiver as created, with its secrets.
type Receiver struct {
	ID            string `json:"id"`
	APIKey        string `json:"api_key"`
	SigningSecret string `json:"signing_secret"`
}

// CreateReceiver registers a receiver through the admin API; extra fields
// (retry, success_body, …) are merged into the request.
func (s *Stack) CreateReceiver(callbackURL string, extra map[string]any) Receiver {
	s.t.Helper()
	body := map[string]any{"name": "merchant", "callback_url": callbackURL}
	for k, v := range extra {
		body[k] = v
	}
	var r Receiver
	s.Call(http.MethodPost, "/v1/receivers", AdminToken, body, http.StatusCreated, &r)
	return r
}

// Do makes one API request with token (none if empty); a body that is a
// string is sent as is, anything else as JSON. It returns the status code
// and the raw answer.
func (s *Stack) Do(method, path, token string, body any) (int, []byte) {
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
	req, err := http.NewRequest(method, s.URL+path, rd)
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
	return resp.StatusCode, raw
}

// Call is Do that fails the test unless the answer has status want, and
// decodes the answer into out (if not nil).
func (s *Stack) Call(method, path, token string, body any, want int, out any) {
	s.t.Helper()
	code, raw := s.Do(method, path, token, body)
	if code != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, code, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// WaitStatus polls until every notification has one of the final statuses
// given (or the status given), failing the test after timeout.
func (s *Stack) WaitStatus(timeout time.Duration, status string, ids ...string) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, id := range ids {
		for {
			var n struct{ Status string }
			s.Call(http.MethodGet, "/v1/notifications/"+id, AdminToken, nil, http.StatusOK, &n)
			if n.Status == status {
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("notification %s: status %s, want %s", id, n.Status, status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// CallbackServer is a receiver endpoint on loopback answering with a
// settable status code; it counts requests.
type CallbackServer struct {
	*httptest.Server
	status atomic.Int64
	hits   atomic.Int64
}

// NewCallbackServer answers every callback with code until SetStatus.
func NewCallbackServer(t testing.TB, code int) *CallbackServer {
	cs := &CallbackServer{}
	cs.status.Store(int64(code))
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		cs.hits.Add(1)
		w.WriteHeader(int(cs.status.Load()))
	}))
	t.Cleanup(cs.Close)
	return cs
}

// SetStatus changes the answer for later callbacks.
func (cs *CallbackServer) SetStatus(code int) { cs.status.Store(int64(code)) }

// Hits is how many callbacks arrived so far.
func (cs *CallbackServer) Hits() int { return int(cs.hits.Load()) }
