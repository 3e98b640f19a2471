package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/testenv"
)

// pendingTasks gathers reg and returns notifyd_queue_tasks{queue, state="pending"}.
func pendingTasks(t *testing.T, reg *prometheus.Registry, queue string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "notifyd_queue_tasks" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["queue"] == queue && l["state"] == "pending" {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no pending series for queue %s", queue)
	return 0
}

// TestQueueCollectorCachesReads: the depth is read from Redis, a queue
// Asynq has never seen reads 0, and scrapes within the cache TTL are served
// from one read (tasks added meanwhile show after it).
func TestQueueCollectorCachesReads(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testenv.Redis(t))
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	enqueue := func(from, n int) {
		for i := from; i < from+n; i++ {
			if _, err := client.Enqueue(asynq.NewTask("t", nil), asynq.Queue("q1"), asynq.TaskID(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	enqueue(0, 3)
	ttl := 2 * time.Second
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewQueueCollector(asynq.NewInspectorFromRedisClient(rdb), []string{"q1", "q2"}, ttl))
	read := time.Now()
	if got := pendingTasks(t, reg, "q1"); got != 3 {
		t.Fatalf("q1 pending %v, want 3", got)
	}
	// The cached read happened between read and readDone: it expires by
	// readDone+ttl at the latest, and not before read+ttl.
	readDone := time.Now()
	if got := pendingTasks(t, reg, "q2"); got != 0 {
		t.Fatalf("q2 (never used) pending %v, want 0", got)
	}
	enqueue(3, 2)
	if got := pendingTasks(t, reg, "q1"); time.Since(read) < ttl && got != 3 {
		t.Fatalf("within the TTL: q1 pending %v, want the cached 3", got)
	}
	time.Sleep(time.Until(readDone.Add(ttl)))
	if got := pendingTasks(t, reg, "q1"); got != 5 {
		t.Fatalf("after the TTL: q1 pending %v, want 5", got)
	}
}
