package worker

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/testenv"
)

// TestWorkerConsumesExistingShardQueues: a worker reads Asynq's list of
// queues when it starts and consumes, besides its own shards and the
// unsharded queues, every delivery queue of another shard count (a count
// lowered from 4 to 2 leaves notify_3 behind), so its tasks are drained.
func TestWorkerConsumesExistingShardQueues(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testenv.Redis(t))
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.SAdd(ctx, asynqQueuesKey, "notify", "notify_retry", "notify_3", "notify_retry_3", "default").Err(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := New(nil, rdb, Config{QueueShards: 2, Logger: log})
	want := map[string]int{"notify": 1, "notify_retry": 1, "notify_0": 8, "notify_retry_0": 2, "notify_1": 8, "notify_retry_1": 2,
		"notify_3": 1, "notify_retry_3": 1}
	if got := w.queueWeights(ctx); !maps.Equal(got, want) {
		t.Errorf("queue weights %v, want %v", got, want)
	}
	unsharded := New(nil, rdb, Config{Logger: log})
	if got := unsharded.queueWeights(ctx); got["notify"] != 8 || got["notify_retry"] != 2 || got["notify_3"] != 1 || len(got) != 4 {
		t.Errorf("unsharded worker's queue weights %v", got)
	}
}
