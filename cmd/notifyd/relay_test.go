package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/notifier"
)

func TestOutboxSchemaCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{nil, 0, "CREATE TABLE IF NOT EXISTS notifyd_outbox ("},
		{[]string{"-table", "shop_outbox"}, 0, "CREATE INDEX IF NOT EXISTS shop_outbox_unsent_idx ON shop_outbox (id)"},
		{[]string{"-table", "shop-outbox"}, 2, "invalid outbox table name"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"outbox-schema"}, tc.args...), &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.contains) {
			t.Errorf("outbox-schema %v: exit %d, output %q; want %d containing %q", tc.args, code, stdout.String()+stderr.String(), tc.code, tc.contains)
		}
	}
	// What it prints is what a producer's migration tool applies.
	var stdout bytes.Buffer
	run(context.Background(), []string{"outbox-schema", "-table", "shop_outbox"}, &stdout, &stdout)
	_, pool := testenv.Pool(t)
	for range 2 {
		if _, err := pool.Exec(context.Background(), stdout.String()); err != nil {
			t.Fatalf("applying the printed schema: %v", err)
		}
	}
	c := notifier.NewFromRedisClient(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), notifier.WithOutboxTable("shop_outbox"))
	defer c.Close()
	if _, err := c.EnqueueTx(context.Background(), pool, notifier.Notification{
		ReceiverID: uuid.NewString(), EventType: "e", IdempotencyKey: "k", Payload: json.RawMessage(`{}`),
	}); err != nil {
		t.Errorf("EnqueueTx into the printed schema: %v", err)
	}
}

// TestRelayCommand runs `notifyd relay` as producers would run the sidecar:
// a committed outbox row reaches notifyd's queue, and the command stops
// cleanly when told to.
func TestRelayCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url, pool := testenv.Pool(t)
	if err := notifier.MigrateOutbox(ctx, pool, ""); err != nil {
		t.Fatal(err)
	}
	notifydURL := testenv.Database(t) // notifyd's own, which the relay confirms against
	ropt := testenv.Redis(t)
	rdb := redis.NewClient(ropt)
	defer rdb.Close()
	receiver := uuid.New()
	if err := registry.Sync(ctx, rdb, map[uuid.UUID]bool{receiver: true}); err != nil {
		t.Fatal(err)
	}
	producer := notifier.NewFromRedisClient(rdb)
	defer producer.Close()
	id, err := producer.EnqueueTx(ctx, pool, notifier.Notification{
		ReceiverID: receiver.String(), EventType: "trade.paid", IdempotencyKey: "order-1", Payload: json.RawMessage(`{"a":1}`),
	})
	if err != nil {
		t.Fatal(err)
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var logs bytes.Buffer
	done := make(chan int, 1)
	opsAddr := freeAddr(t)
	go func() {
		done <- run(rctx, []string{"relay", "-env", "development", "-outbox-database-url", url, "-database-url", notifydURL,
			"-redis-url", fmt.Sprintf("redis://%s/%d", ropt.Addr, ropt.DB),
			"-ops-addr", opsAddr, "-log-format", "text"}, &logs, &logs)
	}()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := insp.GetTaskInfo(tasks.QueueFirst, id+":1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("task %s:1 not queued within 15 s; relay output:\n%s", id, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Like every process, the relay serves its probes and metrics on the
	// ops address only (README, Operating it); it has no API port.
	for path, want := range map[string]string{"/healthz": `"status":"ok"`, "/readyz": `"ready":true`, "/metrics": "notifyd_outbox_"} {
		resp, err := http.Get("http://" + opsAddr + path)
		if err != nil {
			t.Fatalf("relay ops %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("relay ops %s: %d, want 200 with %q", path, resp.StatusCode, want)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("relay exited %d:\n%s", code, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("relay did not stop within 15 s")
	}
	var sent bool
	if err := pool.QueryRow(ctx, `SELECT sent_at IS NOT NULL FROM notifyd_outbox`).Scan(&sent); err != nil || !sent {
		t.Errorf("row sent = %v, %v", sent, err)
	}

	// Without the producer's database it refuses to start.
	var out bytes.Buffer
	if code := run(ctx, []string{"relay", "-env", "development", "-ops-addr", freeAddr(t)}, &out, &out); code != 1 || !strings.Contains(out.String(), "NOTIFYD_OUTBOX_DATABASE_URL") {
		t.Errorf("relay without a database: exit %d, %s", code, out.String())
	}
}
