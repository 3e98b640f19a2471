package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/internal/tracing"
	"github.com/notifyd/notifyd/internal/tracing/tracingtest"
)

// notifyd all, with an OTLP endpoint set, exports the spans of a
// notification's life, and sends them when it stops: the batch
// processor's delay is a minute here, so only the shutdown flush can have
// sent them. Not parallel: it sets environment variables (and, in process,
// OpenTelemetry's global provider).
func TestAllExportsTracesAndFlushesOnShutdown(t *testing.T) {
	col := tracingtest.NewCollector(t)
	tracingtest.KeepGlobals(t)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer receiver.Close()
	redisOpt := testenv.Redis(t)
	addr := freeAddr(t)
	for k, v := range map[string]string{
		"NOTIFYD_DATABASE_URL": testenv.Database(t), "NOTIFYD_REDIS_URL": fmt.Sprintf("redis://%s/%d", redisOpt.Addr, redisOpt.DB),
		"NOTIFYD_HTTP_ADDR": addr, "NOTIFYD_OPS_ADDR": freeAddr(t), "NOTIFYD_ENV": "development",
		"NOTIFYD_ADMIN_TOKEN": "t", "NOTIFYD_PRODUCER_TOKENS": "p", "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
		"NOTIFYD_LOG_LEVEL": "error", "OTEL_EXPORTER_OTLP_ENDPOINT": col.URL, "OTEL_BSP_SCHEDULE_DELAY": "60000",
	} {
		t.Setenv(k, v)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	exited := make(chan int, 1)
	var out bytes.Buffer
	go func() { exited <- run(ctx, []string{"all"}, &out, &out) }()

	call := func(method, path, token string, body any, into any) int {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		if into != nil {
			json.NewDecoder(resp.Body).Decode(into)
		}
		return resp.StatusCode
	}
	var rcv, n struct{ ID, Status string }
	for deadline := time.Now().Add(60 * time.Second); call("POST", "/v1/receivers", "t",
		map[string]any{"name": "shop", "callback_url": receiver.URL}, &rcv) != http.StatusCreated; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the API never created a receiver; output:\n%s", out.String())
		}
	}
	if code := call("POST", "/v1/notifications", "p", map[string]any{"receiver_id": rcv.ID, "event_type": "trade.paid",
		"idempotency_key": "order-1", "payload": map[string]any{"a": 1}}, &n); code != http.StatusAccepted {
		t.Fatalf("ingest: %d", code)
	}
	for deadline := time.Now().Add(60 * time.Second); n.Status != "delivered"; time.Sleep(100 * time.Millisecond) {
		call("GET", "/v1/notifications/"+n.ID, "t", nil, &n)
		if time.Now().After(deadline) {
			t.Fatalf("notification %s: %s after 60 s", n.ID, n.Status)
		}
	}
	if spans := col.Spans(); len(spans) != 0 {
		t.Fatalf("%d spans exported before shutdown; the test's batch delay did not hold", len(spans))
	}
	stop()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit %d; output:\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("notifyd all did not stop within 30 s")
	}
	got := map[string]tracingtest.Span{}
	for _, s := range col.Spans() {
		if s.Attr(string(tracing.NotificationID)) == n.ID || s.Name == tracing.SpanAttempt {
			got[s.Name] = s
		}
	}
	server, enqueue, deliver := got["POST /v1/notifications"], got[tracing.SpanEnqueue], got[tracing.SpanDeliver]
	attempt, record := got[tracing.SpanAttempt], got[tracing.SpanRecord]
	for name, s := range map[string]tracingtest.Span{"server": server, "enqueue": enqueue, "deliver": deliver, "attempt": attempt, "record": record} {
		if s.Span == nil {
			t.Fatalf("no %s span exported; got %d spans", name, len(col.Spans()))
		}
		if !bytes.Equal(s.TraceId, server.TraceId) {
			t.Errorf("%s span in another trace", name)
		}
		if s.Resource["service.name"] != "notifyd" || s.Resource["notifyd.process"] != "all" {
			t.Errorf("%s span's resource: %v", name, s.Resource)
		}
	}
	for child, parent := range map[string][2]tracingtest.Span{"enqueue": {enqueue, server}, "deliver": {deliver, enqueue},
		"attempt": {attempt, deliver}, "record": {record, deliver}} {
		if !bytes.Equal(parent[0].ParentSpanId, parent[1].SpanId) {
			t.Errorf("%s span's parent is not the expected span", child)
		}
	}
}
