package query

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

// The tokens the test server accepts: apitest's, so its client can create
// receivers and read notifications.
const (
	testAdminToken    = apitest.AdminToken
	testProducerToken = apitest.ProducerToken
)

// testAPI is the real API server on the test's own Postgres database and
// Redis index, without a worker: tests see exactly what the API stored and
// queued. Requests go through apitest's client; only the server, the thing
// under test, is built here (cmd/notifyd/notifydtest builds the whole
// notifyd, but it imports this package and so cannot serve its own tests).
type testAPI struct {
	t         *testing.T
	api       *apitest.Client
	store     *store.Store
	inspector *asynq.Inspector
	srv       *Server
	rdb       *redis.Client
	queue     *asynq.Client
	dbURL     string
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	dbURL := testenv.Database(t)
	st, err := store.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(testenv.Redis(t))
	queue := asynq.NewClientFromRedisClient(rdb)
	a := &testAPI{t: t, store: st, inspector: asynq.NewInspectorFromRedisClient(rdb), rdb: rdb, queue: queue, dbURL: dbURL}
	t.Cleanup(func() {
		queue.Close()
		rdb.Close()
		st.Close()
	})
	return a.serve()
}

// serve starts a server of its own on a's database and Redis: another API
// process of the same deployment.
func (a *testAPI) serve() *testAPI {
	srv := New(a.store, a.rdb, a.queue, Config{
		AdminToken: testAdminToken, ProducerTokens: []string{testProducerToken},
		Targets: netguard.Policy{AllowPrivate: true},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	hs := httptest.NewServer(srv.Handler())
	a.t.Cleanup(hs.Close)
	// Subscribed to credential invalidations like a served API process;
	// until then it would not use its credential cache.
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Listen(ctx) }()
	a.t.Cleanup(func() { stop(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !srv.auth.creds.live.Load(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			a.t.Fatal("the server did not subscribe to credential invalidations")
		}
	}
	c := *a
	c.api, c.srv = apitest.NewClient(a.t, hs.URL), srv
	return &c
}

// with is a for a subtest: failures stop t, not the parent test.
func (a *testAPI) with(t *testing.T) *testAPI {
	c := *a
	c.t, c.api = t, a.api.With(t)
	return &c
}

// do makes a request and returns the status and body (see apitest.Client.Do).
func (a *testAPI) do(method, path, token string, body any) (int, []byte) {
	a.t.Helper()
	return a.api.Do(method, path, token, body)
}

// must makes a request that has to answer want, and decodes the answer
// into out (if not nil).
func (a *testAPI) must(want int, method, path, token string, body, out any) {
	a.t.Helper()
	a.api.Call(method, path, token, body, want, out)
}

type testReceiver struct {
	ID     uuid.UUID
	APIKey string
}

// receiver creates a receiver whose callbacks go nowhere (nothing here
// delivers them).
func (a *testAPI) receiver() testReceiver {
	a.t.Helper()
	r := a.api.CreateReceiver("http://127.0.0.1:1/cb", nil)
	return testReceiver{ID: uuid.MustParse(r.ID), APIKey: r.APIKey}
}

// ingest hands a notification in over HTTP (the producer path).
func (a *testAPI) ingest(r testReceiver, key, eventType string) uuid.UUID {
	a.t.Helper()
	var out struct{ ID uuid.UUID }
	a.must(http.StatusAccepted, "POST", "/v1/notifications", testProducerToken, map[string]any{
		"receiver_id": r.ID, "event_type": eventType, "idempotency_key": key, "payload": map[string]any{"key": key},
	}, &out)
	return out.ID
}

// insert writes a notification straight to Postgres (fast, no queueing).
func (a *testAPI) insert(r testReceiver, key, eventType string) *store.Notification {
	a.t.Helper()
	n, _, err := a.store.InsertNotification(context.Background(), store.NewNotification{
		ID: tasks.NotificationID(r.ID, key), ReceiverID: r.ID, EventType: eventType, IdempotencyKey: key,
		Payload: []byte(`{"n":1}`), MaxAttempts: 3,
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return n
}

// exec runs SQL on the test database (to set up states the API does not
// make on its own, like old or failed notifications).
func (a *testAPI) exec(sql string, args ...any) {
	a.t.Helper()
	if _, err := a.store.Pool().Exec(context.Background(), sql, args...); err != nil {
		a.t.Fatalf("%s: %v", sql, err)
	}
}

// apiErr decodes an error body.
func apiErr(t *testing.T, raw []byte) APIError {
	t.Helper()
	var body struct {
		Error *APIError `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Error == nil || body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("not an error body: %s (%v)", raw, err)
	}
	return *body.Error
}

type testProducer struct {
	ID    uuid.UUID
	Token string
}

// producerRecord creates a producer record for receivers (nil: all).
func (a *testAPI) producerRecord(receivers []uuid.UUID) testProducer {
	a.t.Helper()
	var scope any = "all"
	if receivers != nil {
		scope = receivers
	}
	var out testProducer
	a.must(http.StatusCreated, "POST", "/v1/producers", testAdminToken,
		map[string]any{"name": "producer", "receivers": scope}, &out)
	return out
}

// producer is producerRecord's token.
func (a *testAPI) producer(receivers []uuid.UUID) string { return a.producerRecord(receivers).Token }

// revokeKeysBut revokes every key of r but the one it was created with.
func (a *testAPI) revokeKeysBut(r testReceiver) {
	a.t.Helper()
	var keys struct{ Data []struct{ ID, Name string } }
	a.must(http.StatusOK, "GET", "/v1/receivers/"+r.ID.String()+"/api-keys", testAdminToken, nil, &keys)
	for _, k := range keys.Data {
		if k.Name != "default" {
			a.must(http.StatusNoContent, "DELETE", "/v1/receivers/"+r.ID.String()+"/api-keys/"+k.ID, testAdminToken, nil, nil)
		}
	}
}
