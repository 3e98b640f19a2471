package query

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

// benchPayload is a typical ~300-byte notification payload.
var benchPayload = json.RawMessage(`{"order_id":"A-123456","amount_cents":1999,"currency":"EUR","items":[{"sku":"x-1","qty":2},{"sku":"y-2","qty":1}],"customer":{"id":"c-42","email":"someone@example.com"},"note":"` + strings.Repeat("x", 120) + `"}`)

// BenchmarkListRequest is the scenario the listing's encoding serves: one
// GET /v1/notifications page of 50 notifications, served in process by the
// real handler against a real Postgres listing, as a receiver. cpu-ns/op is
// this process's user+system CPU per request (Postgres's own CPU is not in it).
func BenchmarkListRequest(b *testing.B) {
	ctx := context.Background()
	srv, st := benchServer(b)

	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, benchRequest("POST", "/v1/receivers", testAdminToken,
		`{"name":"shop","callback_url":"http://127.0.0.1:1/cb"}`))
	var r struct {
		ID     uuid.UUID `json:"id"`
		APIKey string    `json:"api_key"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || rec.Code != http.StatusCreated {
		b.Fatalf("create receiver: %d %s", rec.Code, rec.Body)
	}
	for i := range 200 {
		key := "order-" + strconv.Itoa(i)
		if _, _, err := st.InsertNotification(ctx, store.NewNotification{ID: tasks.NotificationID(r.ID, key),
			ReceiverID: r.ID, EventType: "trade.paid", IdempotencyKey: key, Payload: benchPayload, MaxAttempts: 3}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := st.Pool().Exec(ctx, "ANALYZE notifications"); err != nil {
		b.Fatal(err)
	}
	get := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, benchRequest("GET", "/v1/notifications?limit=50", r.APIKey, ""))
		return rec
	}
	var page struct {
		Data []struct{ ID uuid.UUID }
	}
	if rec := get(); rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &page) != nil || len(page.Data) != 50 {
		b.Fatalf("list: %d %.200s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		if rec := get(); rec.Code != http.StatusOK {
			b.Fatalf("list: %d", rec.Code)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// benchServer is the API on the benchmark's own database and Redis index.
func benchServer(b *testing.B) (*Server, *store.Store) {
	st, err := store.Open(context.Background(), testenv.Database(b))
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(testenv.Redis(b))
	queue := asynq.NewClientFromRedisClient(rdb)
	b.Cleanup(func() {
		queue.Close()
		rdb.Close()
		st.Close()
	})
	return New(st, rdb, queue, Config{AdminToken: testAdminToken, ProducerTokens: []string{testProducerToken},
		Targets: netguard.Policy{AllowPrivate: true}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), st
}

func benchRequest(method, path, token, body string) *http.Request {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// processCPU is this process's user+system CPU time in nanoseconds.
func processCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
