package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/worker"
)

// TestShardedWorkerTakesUnshardedTasks runs a worker with
// NOTIFYD_QUEUE_SHARDS=4 behind producers that do not shard: the API here
// queues on the unsharded queue, and the Go client has read no published
// shard count. The worker consumes the unsharded queue too, so both
// notifications are delivered; the retry it schedules itself (the receiver
// fails the first attempt) goes to the receiver's retry shard.
func TestShardedWorkerTakesUnshardedTasks(t *testing.T) {
	t.Parallel()
	const shards = 4
	s := newStack(t, withWorker(func(w *worker.Config) { w.QueueShards = shards }))
	rs := newReceiverServer(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	r := s.receiver(rs.URL, nil)
	first := s.send(r.ID, "over-http", map[string]any{"amount": 1})
	s.waitStatus(first, "delivered", 20*time.Second)
	viaGo := s.notifyGo(r.ID, "over-go")
	s.waitStatus(viaGo, "delivered", 20*time.Second)

	ctx := context.Background()
	retryQueue := tasks.QueueOf(uuid.MustParse(r.ID), true, shards)
	// Asynq counts a task processed just after its handler returns, which
	// may be just after Postgres says delivered.
	processed := func(q string) int { n, _ := s.rdb.Get(ctx, "asynq:{"+q+"}:processed").Int(); return n }
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if processed(tasks.QueueFirst) == 2 && processed(retryQueue) == 1 {
			break
		}
	}
	if f, r := processed(tasks.QueueFirst), processed(retryQueue); f != 2 || r != 1 {
		t.Errorf("queues %s and %s processed %d and %d tasks, want 2 and 1", tasks.QueueFirst, retryQueue, f, r)
	}
	if n := s.rdb.Exists(ctx, "asynq:{"+tasks.QueueRetry+"}:processed").Val(); n != 0 {
		t.Errorf("the worker's own retry went to the unsharded retry queue")
	}
}
