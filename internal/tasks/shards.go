package tasks

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Queue shards (NOTIFYD_QUEUE_SHARDS). Asynq keeps every key of one queue
// under one Redis Cluster hash tag ({queue}), so one queue lives on one
// master. With S > 1 shards the first and retry queues are split into
// notify_0…notify_S-1 and notify_retry_0…notify_retry_S-1, and a receiver's
// tasks always go to the same shard, so the queues spread over a cluster's
// masters while one receiver's tasks stay in one place (the same task id
// always lands in the same queue, which is what makes Asynq refuse a
// duplicate). With S = 1 the names are the unsharded QueueFirst and
// QueueRetry, exactly as before shards existed.
//
// Workers of a sharded installation also consume the unsharded queues and
// every shard queue that exists when they start (ShardedWeights), so a task
// queued by a producer with another shard count (a Go client that has not
// read the count yet, a process still on the old setting during a change)
// is delivered rather than stranded.

// MaxQueueShards bounds NOTIFYD_QUEUE_SHARDS: every queue costs a Redis
// round trip in each fetch that finds it empty.
const MaxQueueShards = 64

// Shard is receiver's shard among shards: FNV-1a of the receiver id's 16
// bytes, modulo shards. It must never change, or a task re-driven under the
// same id would land in another queue than its twin.
func Shard(receiver uuid.UUID, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write(receiver[:])
	return int(h.Sum32() % uint32(shards))
}

// QueueOf is the queue of receiver's first attempts (retry false) or of its
// retries, with shards queue shards.
func QueueOf(receiver uuid.UUID, retry bool, shards int) string {
	base := QueueFirst
	if retry {
		base = QueueRetry
	}
	if shards <= 1 {
		return base
	}
	return shardQueue(base, Shard(receiver, shards))
}

func shardQueue(base string, shard int) string { return base + "_" + strconv.Itoa(shard) }

// Queues lists the delivery queues of an installation with shards shards:
// the unsharded pair, which always exists, then every shard's pair.
func Queues(shards int) []string {
	out := []string{QueueFirst, QueueRetry}
	for i := 0; shards > 1 && i < shards; i++ {
		out = append(out, shardQueue(QueueFirst, i), shardQueue(QueueRetry, i))
	}
	return out
}

// IsQueue reports whether name is one of notifyd's delivery queues, under
// any shard count.
func IsQueue(name string) bool {
	if name == QueueFirst || name == QueueRetry {
		return true
	}
	rest, ok := strings.CutPrefix(name, QueueRetry+"_")
	if !ok {
		rest, ok = strings.CutPrefix(name, QueueFirst+"_")
	}
	n, err := strconv.Atoi(rest)
	return ok && err == nil && n >= 0 && n < MaxQueueShards && strconv.Itoa(n) == rest
}

// ShardedWeights is the Asynq server's queue weights for a worker with
// shards shards. With one shard it is QueueWeights. With more, each shard's
// first and retry queues weigh what the unsharded ones do (8 and 2, so fresh
// work keeps its priority over retries), and the unsharded queues and the
// delivery queues among existing (Asynq's list of queues in Redis) that are
// not this worker's shards (another shard count's) weigh 1: they are a safety net that normally
// stays empty, and a low weight keeps the fetch loop from trying them first.
func ShardedWeights(shards int, existing []string) map[string]int {
	if shards <= 1 {
		w := map[string]int{QueueFirst: QueueWeights[QueueFirst], QueueRetry: QueueWeights[QueueRetry]}
		for _, q := range existing {
			if _, ok := w[q]; !ok && IsQueue(q) {
				w[q] = 1
			}
		}
		return w
	}
	w := map[string]int{QueueFirst: 1, QueueRetry: 1}
	for _, q := range existing {
		if IsQueue(q) {
			w[q] = 1
		}
	}
	for i := range shards {
		w[shardQueue(QueueFirst, i)] = QueueWeights[QueueFirst]
		w[shardQueue(QueueRetry, i)] = QueueWeights[QueueRetry]
	}
	return w
}

// Sharded is an Enqueuer whose tasks go to Shards queue shards: Enqueue
// and Schedule give every task queued through it (whose QueueShards is
// unset) that shard count.
type Sharded struct {
	Enqueuer
	Shards int
}

// ShardsOf is the shard count of q: Sharded's, otherwise 1.
func ShardsOf(q Enqueuer) int {
	if s, ok := q.(Sharded); ok && s.Shards > 1 {
		return s.Shards
	}
	if s, ok := q.(*Sharded); ok && s.Shards > 1 {
		return s.Shards
	}
	return 1
}

// QueuesAmong is what readers of the queues (metrics, the console, test
// helpers) show: the unsharded pair, which always exists for them, then
// every shard queue in known (Asynq's list of queues, asynq.Inspector's
// Queues), whatever shard count put it there, in shard order.
func QueuesAmong(known []string) []string {
	has := make(map[string]bool, len(known))
	for _, q := range known {
		has[q] = true
	}
	out := []string{QueueFirst, QueueRetry}
	for i := range MaxQueueShards {
		for _, q := range []string{shardQueue(QueueFirst, i), shardQueue(QueueRetry, i)} {
			if has[q] {
				out = append(out, q)
			}
		}
	}
	return out
}
