package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisRestartedEmpty kills the Redis that carries the queue (a
// redis-server of the test's own, without persistence) in the middle of a
// run and starts an empty one on the same port: every task, first attempts
// and scheduled retries alike, is gone. Every notification is in Postgres
// (HTTP ingest writes it before answering 202), so the scheduler's re-drive
// job must queue them again; all must reach a terminal state and no
// notification may be created twice.
func TestRedisRestartedEmpty(t *testing.T) {
	faultTest(t)
	start := time.Now()
	const (
		notifications = 500
		receiverCount = 10
	)
	// Every third receiver refuses a third of first attempts: at the
	// restart Redis holds retries scheduled for later as well as first
	// attempts. (Refusing all of them would trip the circuit breaker.)
	rs := newReceivers(t, receiverCount, func(idx int, id string, attempt int) (time.Duration, int) {
		delay := time.Duration(100+roll("delay", id, attempt)%200) * time.Millisecond
		if idx%3 == 0 && attempt == 1 && roll("refuse", id, attempt)%3 == 0 {
			return delay, 500
		}
		return delay, 200
	})
	rds := startRedis(t)
	c := newCluster(t, "redis://"+rds.addr()+"/0", map[string]string{
		"NOTIFYD_WORKER_CONCURRENCY": "20",
		"NOTIFYD_RETRY_MAX_ATTEMPTS": "4",
		"NOTIFYD_RETRY_BASE":         "2s",
		"NOTIFYD_RETRY_MAX_INTERVAL": "2s",
	})
	_, a := c.startAPI()
	receiverIDs := a.createReceivers(rs)
	ids := a.ingestAll(receiverIDs, notifications, 16)
	w, _ := c.start("worker", nil)
	sched, _ := c.start("scheduler", nil)

	waitFor(t, "deliveries to be under way", 60*time.Second, func() bool {
		return rs.Completed() >= 100 && rs.Active() >= 10
	})
	queued := redisKeys(t, rds.addr())
	rds.restartEmpty(t)
	restarted := time.Now()
	var pendingAtRestart int
	if err := c.db.QueryRow(context.Background(), `SELECT count(*) FROM notifications WHERE status = 'pending'`).Scan(&pendingAtRestart); err != nil {
		t.Fatal(err)
	}
	t.Logf("Redis restarted empty (it held %d keys) with %d notifications pending and %d requests in flight",
		queued, pendingAtRestart, rs.Active())
	if pendingAtRestart < 100 {
		t.Fatalf("only %d notifications pending at the restart; the fault would prove little", pendingAtRestart)
	}

	c.waitTerminal(t, notifications, 2*time.Minute)
	t.Logf("all terminal %s after the restart", time.Since(restarted).Round(time.Second))
	for _, p := range []*proc{w, sched} {
		if !p.Running() {
			t.Errorf("%s exited: %v", p.Name, p.WaitErr())
		}
	}

	aud := checkRecords(t, c, rs, ids)
	if aud.failed != 0 {
		t.Errorf("%d notifications failed; every receiver accepts by attempt 2", aud.failed)
	}
	var total int
	if err := c.db.QueryRow(context.Background(), `SELECT count(*) FROM notifications`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != notifications {
		t.Errorf("%d notifications in Postgres after the re-drive, want %d", total, notifications)
	}
	t.Logf("test took %s", time.Since(start).Round(time.Second))
}

// redisKeys is the number of keys in DB 0 of the server at addr.
func redisKeys(t *testing.T, addr string) int64 {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	n, err := c.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(fmt.Errorf("redis %s: %w", addr, err))
	}
	return n
}
