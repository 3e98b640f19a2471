package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/fleet"
	"github.com/notifyd/notifyd/internal/redisurl"
	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/notifier"
)

// clusterShards is NOTIFYD_QUEUE_SHARDS in the cluster test: with four
// shards the first-attempt queues notify_0…notify_3 hash to all three
// masters of a cluster whose slots are split in three.
const clusterShards = 4

// startRedisCluster is a fleet.RedisCluster stopped when the test ends.
func startRedisCluster(t *testing.T) *fleet.RedisCluster {
	t.Helper()
	rc, err := fleet.StartRedisCluster(t.TempDir())
	if rc != nil {
		t.Cleanup(func() {
			if t.Failed() {
				for _, n := range rc.Nodes {
					if n.Proc != nil {
						t.Log(n.Proc.LogDigest())
					}
				}
			}
			rc.Stop()
		})
	}
	if errors.Is(err, fleet.ErrNoRedisServer) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestRedisCluster runs notifyd (api, scheduler and worker processes with
// NOTIFYD_QUEUE_SHARDS=4) on a real 3-master Redis Cluster:
//
//   - re-drive after the whole cluster is flushed: notifications ingested
//     over HTTP while no worker runs are wiped from every master, and the
//     re-drive job queues them again from Postgres;
//   - delivery through HTTP ingest and the Go client built from the same
//     cluster URL, which reads the shard count the workers publish;
//   - per-receiver isolation: a slow receiver is held to
//     NOTIFYD_RECEIVER_CONCURRENCY requests in flight (slots in the cluster)
//     while the others' deliveries go through;
//   - every master holds some of the delivery queues, retries went to the
//     retry shards (a third of first attempts fail), and no task went to
//     the unsharded queues.
//
// Every notification ends delivered, with no attempt recorded twice.
func TestRedisCluster(t *testing.T) {
	faultTest(t)
	ctx := context.Background()
	rc := startRedisCluster(t)
	const receiverCap = 2
	rs := newReceivers(t, clusterShards+1, func(idx int, id string, attempt int) (time.Duration, int) {
		if idx == 0 {
			return 300 * time.Millisecond, 200 // slow: always at its cap
		}
		if attempt == 1 && roll("cluster", id, attempt)%3 == 0 {
			return 10 * time.Millisecond, 503 // a third of first attempts: retries on the retry shards
		}
		return 10 * time.Millisecond, 200
	})
	c := newCluster(t, rc.URL(), map[string]string{
		"NOTIFYD_QUEUE_SHARDS":         strconv.Itoa(clusterShards),
		"NOTIFYD_RECEIVER_CONCURRENCY": strconv.Itoa(receiverCap),
		"NOTIFYD_WORKER_CONCURRENCY":   "20",
	})
	_, a := c.startAPI()
	ids := coverShards(t, a, rs)
	c.start("scheduler", nil)

	// Queued while no worker runs, then the whole cluster forgets them.
	const flushed = 20
	for i := range flushed {
		a.ingest(ids[i%len(ids)], "flushed-"+strconv.Itoa(i))
	}
	if err := rc.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	flushedAt := time.Now()
	_, workerOps := c.start("worker", nil) // re-publishes the registry and the shard count
	waitPublished(t, rc.URL())

	goClient, err := notifier.NewFromURL(rc.URL(), notifier.WithAllowPrivateTargets(true))
	if err != nil {
		t.Fatal(err)
	}
	defer goClient.Close()
	const perWay = 40
	for i := range perWay {
		receiver := ids[i%len(ids)]
		a.ingest(receiver, "http-"+strconv.Itoa(i))
		if _, err := goClient.Notify(ctx, notifier.Notification{ReceiverID: receiver, EventType: "trade.paid",
			IdempotencyKey: "go-" + strconv.Itoa(i), Payload: []byte(`{"way":"go"}`)}); err != nil {
			t.Fatalf("Go client on the cluster: %v", err)
		}
	}
	c.waitTerminal(t, flushed+2*perWay, 60*time.Second)
	t.Logf("flushed notifications re-driven and delivered %s after the flush", time.Since(flushedAt).Round(time.Second))
	var delivered int
	if err := c.db.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE status = 'delivered'`).Scan(&delivered); err != nil {
		t.Fatal(err)
	}
	if delivered != flushed+2*perWay {
		t.Errorf("%d notifications delivered, want %d", delivered, flushed+2*perWay)
	}
	c.checkNoDuplicateAttempts(t)
	checkReceiverCap(t, rs, receiverCap)
	checkQueuesSpread(t, rc)
	checkClusterMetrics(t, workerOps, len(rc.Nodes))
	checkModeRefused(t, rc)
}

// checkClusterMetrics checks that the queue depth metrics, read through
// Asynq's inspector on the cluster, name every shard, and that the Redis
// pool metrics count a pool per node.
func checkClusterMetrics(t *testing.T, ops string, nodes int) {
	t.Helper()
	resp, err := http.Get(ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range clusterShards {
		for _, q := range []string{tasks.QueueFirst, tasks.QueueRetry} {
			line := fmt.Sprintf(`notifyd_queue_tasks{queue="%s_%d",state="pending"} 0`, q, i)
			if !strings.Contains(string(body), line) {
				t.Errorf("worker metrics lack %s", line)
			}
		}
	}
	if !strings.Contains(string(body), "notifyd_queue_read_errors_total 0") {
		t.Errorf("queue metrics could not be read on the cluster")
	}
	var max, idle, inUse int
	for line := range strings.Lines(string(body)) {
		fmt.Sscanf(line, "notifyd_redis_pool_max_connections %d", &max)
		fmt.Sscanf(line, `notifyd_redis_pool_connections{state="idle"} %d`, &idle)
		fmt.Sscanf(line, `notifyd_redis_pool_connections{state="in_use"} %d`, &inUse)
	}
	if max == 0 || max%nodes != 0 || idle+inUse == 0 || idle+inUse > max {
		t.Errorf("Redis pool metrics on a cluster of %d nodes: max %d (want a pool size times %d), idle %d, in use %d",
			nodes, max, nodes, idle, inUse)
	}
}

// checkModeRefused: a single-node URL naming a cluster node is refused at
// start (redisurl.CheckClusterMode), a cluster URL is not.
func checkModeRefused(t *testing.T, rc *fleet.RedisCluster) {
	t.Helper()
	ctx := context.Background()
	for url, want := range map[string]error{"redis://" + rc.Nodes[1].Addr() + "/0": redisurl.ErrClusterNode, rc.URL(): nil} {
		conn, err := redisurl.Parse(url)
		if err != nil {
			t.Fatal(err)
		}
		rdb := conn.Client()
		if err := redisurl.CheckClusterMode(ctx, rdb); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("CheckClusterMode(%s) = %v, want %v", url, err, want)
		}
		rdb.Close()
	}
}

// coverShards registers receivers until every shard has one: receiver 0 of
// rs (the slow one) first, then one per shard, each at an endpoint of its
// own (a candidate whose shard is taken already gets no notifications). It
// returns their ids, the slow one first and then shard by shard.
func coverShards(t *testing.T, a *api, rs *receivers) []string {
	t.Helper()
	ids := []string{a.createReceiver("slow", rs.URL(0))}
	byShard := make([]string, clusterShards)
	for n := 0; len(ids) <= clusterShards; n++ {
		if n == 200 {
			t.Fatalf("200 receivers did not cover %d shards", clusterShards)
		}
		id := a.createReceiver("merchant-"+strconv.Itoa(n), rs.URL(len(ids)))
		if shard := tasks.Shard(uuid.MustParse(id), clusterShards); byShard[shard] == "" {
			byShard[shard] = id
			ids = append(ids, id)
		}
	}
	return ids
}

// waitPublished waits until the worker has published the shard count and
// the receiver registry in the flushed cluster.
func waitPublished(t *testing.T, url string) {
	t.Helper()
	conn, err := redisurl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := conn.Client()
	defer rdb.Close()
	waitFor(t, "the worker to publish the shard count and the registry", 20*time.Second, func() bool {
		n, err := registry.QueueShards(context.Background(), rdb)
		loaded, _ := rdb.HExists(context.Background(), registry.Key, "_loaded").Result()
		return err == nil && n == clusterShards && loaded
	})
}

// checkQueuesSpread checks, from the keys each master holds, that every
// master holds some of the delivery queues (Asynq's asynq:{queue}:… keys,
// its processed counters outliving the tasks), that each queue lives on one
// master only, and that nothing went to the unsharded queues.
func checkQueuesSpread(t *testing.T, rc *fleet.RedisCluster) {
	t.Helper()
	keys, err := rc.Keys(context.Background(), "asynq:{notify*}:*")
	if err != nil {
		t.Fatal(err)
	}
	home := map[string]string{} // queue → node
	for node, ks := range keys {
		queues := map[string]bool{}
		for _, k := range ks {
			q := k[strings.IndexByte(k, '{')+1 : strings.IndexByte(k, '}')]
			queues[q] = true
			if prev, ok := home[q]; ok && prev != node {
				t.Errorf("queue %s has keys on %s and %s", q, prev, node)
			}
			home[q] = node
		}
		if len(queues) == 0 {
			t.Errorf("master %s holds none of the delivery queues", node)
		}
		t.Logf("master %s holds %s", node, fmt.Sprint(keysOf(queues)))
	}
	for _, q := range []string{tasks.QueueFirst, tasks.QueueRetry} {
		if _, ok := home[q]; ok {
			t.Errorf("unsharded queue %s was used: a producer ignored NOTIFYD_QUEUE_SHARDS", q)
		}
	}
	for i := range clusterShards {
		if q := tasks.QueueFirst + "_" + strconv.Itoa(i); home[q] == "" {
			t.Errorf("shard queue %s never held a task", q)
		}
	}
	retries := 0
	for q := range home {
		if strings.HasPrefix(q, tasks.QueueRetry+"_") {
			retries++
		}
	}
	if retries == 0 {
		t.Errorf("no retry shard queue held a task: the retries were not exercised")
	}
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
