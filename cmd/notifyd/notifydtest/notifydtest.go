// Package notifydtest runs a whole notifyd in process for a test: the HTTP
// API on httptest and a delivery worker, on the test's own Postgres database
// and Redis index (internal/testenv), with the receiver registry kept in
// Redis as cmd/notifyd keeps it. A real-database test is then a few lines:
//
//	s := notifydtest.Start(t)
//	cb := apitest.NewCallbackServer(t, http.StatusOK)
//	r := s.CreateReceiver(cb.URL, nil)
//
// It owns assembling query and worker for tests, and nothing else; requests
// to the API are internal/apitest's. It sits where cmd/notifyd sits, above
// query, worker and notifier, because that is where they are put together:
// internal/ must not import them. Only test files import this package, and
// only from packages other than query and worker themselves (query_test,
// client_test, e2e, notifyctl): query's in-package tests build their own
// server with internal/apitest, which imports neither. It must not reach into
// production code through hooks or globals: what a test adjusts goes through
// the worker's and the API's Config, as in production.
package notifydtest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query"
	"github.com/notifyd/notifyd/worker"
)

// Stack is one notifyd for one test. Its embedded client calls the API.
type Stack struct {
	*apitest.Client
	Store *store.Store
	// Redis is the test's own Redis database, shared by API and worker.
	Redis *redis.Client
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

// WithWorker lets f adjust the worker's configuration.
func WithWorker(f func(*worker.Config)) Option {
	return func(w *worker.Config, _ *query.Config) { f(w) }
}

// WithTargets sets the callback target policy of the API and the worker
// (default: loopback allowed).
func WithTargets(p netguard.Policy) Option {
	return func(w *worker.Config, q *query.Config) { w.Targets, q.Targets = p, p }
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
	logger := testLogger(t)
	wcfg, qcfg := defaults(logger)
	for _, o := range opts {
		o(&wcfg, &qcfg)
	}
	// One synchronous registry sync first, so the Go client knows the
	// registry is loaded; then keep it fresh as receivers are created.
	states, err := st.ListReceiverStates(ctx)
	if err == nil {
		err = registry.Sync(ctx, rdb, states)
	}
	if err == nil {
		err = registry.SyncCallbackHosts(ctx, rdb, nil)
	}
	if err != nil {
		cancel()
		t.Fatalf("notifydtest: registry sync: %v", err)
	}
	go registry.Keep(ctx, st, rdb, 200*time.Millisecond, logger)
	queue := asynq.NewClientFromRedisClient(rdb)
	apiSrv := query.New(st, rdb, queue, qcfg)
	go apiSrv.Listen(ctx) // credential invalidations, as Serve does
	api := httptest.NewServer(apiSrv.Handler())
	w := worker.New(st, rdb, wcfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("notifydtest: worker: %v", err)
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
	return &Stack{Client: apitest.NewClient(t, api.URL), Store: st, Redis: rdb}
}

// defaults is the configuration before options: fast retries, loopback
// callbacks allowed, the apitest tokens, no circuit breaker.
func defaults(logger *slog.Logger) (worker.Config, query.Config) {
	targets := netguard.Policy{AllowPrivate: true}
	w := worker.Config{
		Logger: logger, Concurrency: 10, Retry: FastRetry(), Targets: targets, ShutdownTimeout: 5 * time.Second,
		// Tests simulate receiver outages to exercise the API and its
		// clients; the breaker would defer those attempts for its cool-down.
		Breaker: worker.BreakerConfig{Failures: -1},
	}
	q := query.Config{
		Logger: logger, AdminToken: apitest.AdminToken, ProducerTokens: []string{apitest.ProducerToken},
		Retry: FastRetry(), Targets: targets,
	}
	return w, q
}

func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testLog sends log lines to the test log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// StartExample is Start for a runnable example, which has no *testing.T:
// failures panic (see testenv.ExampleTB), and tb.Close ends the stack and
// drops its database. tb serves the example's other set-up too.
func StartExample(name string, opts ...Option) (s *Stack, tb *testenv.ExampleTB) {
	tb = testenv.NewExampleTB(name)
	defer func() {
		if s == nil {
			tb.Close() // Start failed: drop what it had made; its panic goes on
		}
	}()
	return Start(tb, opts...), tb
}
