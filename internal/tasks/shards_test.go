package tasks

import (
	"maps"
	"slices"
	"testing"

	"github.com/google/uuid"
)

// TestOneShardIsUnsharded pins that NOTIFYD_QUEUE_SHARDS=1 (and an unset
// count) keeps the queue names and weights of before shards existed.
func TestOneShardIsUnsharded(t *testing.T) {
	t.Parallel()
	r := uuid.New()
	for _, shards := range []int{0, 1} {
		first := Deliver{ReceiverID: r, Attempt: 1, QueueShards: shards}
		manual := Deliver{ReceiverID: r, Attempt: 0, QueueShards: shards}
		retry := Deliver{ReceiverID: r, Attempt: 2, QueueShards: shards}
		if first.Queue() != "notify" || manual.Queue() != "notify" || retry.Queue() != "notify_retry" {
			t.Errorf("shards %d: queues %q %q %q", shards, first.Queue(), manual.Queue(), retry.Queue())
		}
	}
	if w := ShardedWeights(1, []string{"notify", "notify_retry", "default"}); !maps.Equal(w, QueueWeights) {
		t.Errorf("ShardedWeights(1) = %v, want %v", w, QueueWeights)
	}
	if q := Queues(1); !slices.Equal(q, []string{"notify", "notify_retry"}) {
		t.Errorf("Queues(1) = %v", q)
	}
}

// TestShardIsStable pins the hash (FNV-1a of the id's bytes): a change
// would send a re-driven task to another queue than its twin, which Asynq
// would then not refuse.
func TestShardIsStable(t *testing.T) {
	t.Parallel()
	for id, want := range map[string][4]int{ // shards 2, 4, 7, 64
		"0b3c2f5e-6a1d-4f7b-9c8e-1d2a3b4c5d6e": {1, 1, 0, 17},
		"00000000-0000-0000-0000-000000000001": {0, 2, 2, 50},
		"ffffffff-ffff-4fff-bfff-ffffffffffff": {1, 1, 5, 37},
	} {
		r := uuid.MustParse(id)
		if got := [4]int{Shard(r, 2), Shard(r, 4), Shard(r, 7), Shard(r, 64)}; got != want {
			t.Errorf("Shard(%s) for 2, 4, 7, 64 shards = %v, want %v", id, got, want)
		}
	}
	r := uuid.MustParse("00000000-0000-0000-0000-000000000001")
	first, retry := Deliver{ReceiverID: r, Attempt: 1, QueueShards: 4}, Deliver{ReceiverID: r, Attempt: 3, QueueShards: 4}
	if first.Queue() != "notify_2" || retry.Queue() != "notify_retry_2" {
		t.Errorf("queues %q and %q, want notify_2 and notify_retry_2", first.Queue(), retry.Queue())
	}
}

// TestShardsSpread checks that receivers spread over every shard roughly
// evenly.
func TestShardsSpread(t *testing.T) {
	t.Parallel()
	const shards, n = 4, 4000
	count := make([]int, shards)
	for range n {
		count[Shard(uuid.New(), shards)]++
	}
	for i, c := range count {
		if c < n/shards*8/10 || c > n/shards*12/10 {
			t.Errorf("shard %d got %d of %d receivers", i, c, n)
		}
	}
}

// TestShardedWeights: a sharded worker weighs each shard as the unsharded
// queues were weighed, and consumes the unsharded queues and other shard
// counts' queues at weight 1 so that no task is stranded.
func TestShardedWeights(t *testing.T) {
	t.Parallel()
	w := ShardedWeights(2, []string{"notify_5", "notify_retry_3", "notify_x", "default", "notify_0"})
	want := map[string]int{"notify": 1, "notify_retry": 1, "notify_0": 8, "notify_retry_0": 2, "notify_1": 8, "notify_retry_1": 2,
		"notify_5": 1, "notify_retry_3": 1}
	if !maps.Equal(w, want) {
		t.Errorf("ShardedWeights(2) = %v, want %v", w, want)
	}
	if w := ShardedWeights(1, []string{"notify_2"}); w["notify_2"] != 1 || w["notify"] != 8 {
		t.Errorf("an unsharded worker does not drain a former shard: %v", w)
	}
}

func TestIsQueueAndQueuesAmong(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]bool{"notify": true, "notify_retry": true, "notify_0": true, "notify_retry_63": true,
		"notify_64": false, "notify_01": false, "notify_-1": false, "notify_retry_": false, "default": false, "notify_x": false} {
		if IsQueue(q) != want {
			t.Errorf("IsQueue(%q) = %v", q, !want)
		}
	}
	got := QueuesAmong([]string{"notify_retry_1", "default", "notify_10", "notify_1"})
	if want := []string{"notify", "notify_retry", "notify_1", "notify_retry_1", "notify_10"}; !slices.Equal(got, want) {
		t.Errorf("QueuesAmong = %v, want %v", got, want)
	}
	if q := Queues(2); !slices.Equal(q, []string{"notify", "notify_retry", "notify_0", "notify_retry_0", "notify_1", "notify_retry_1"}) {
		t.Errorf("Queues(2) = %v", q)
	}
}

// TestShardsOf: Enqueue takes a task's shard count from a Sharded
// enqueuer, by value or pointer; anything else is unsharded.
func TestShardsOf(t *testing.T) {
	t.Parallel()
	if ShardsOf(Sharded{Shards: 4}) != 4 || ShardsOf(&Sharded{Shards: 3}) != 3 || ShardsOf(nil) != 1 || ShardsOf(Sharded{}) != 1 {
		t.Error("ShardsOf")
	}
}
