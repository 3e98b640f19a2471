package faults

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/circuit"
)

// TestRecoveredReceiverGetsItsNotificationsWithinFiveSeconds runs two worker
// processes against a receiver whose endpoint fails until its circuit opens
// fleet-wide (30 s cool-down, as in production), then is fixed. A manual
// redelivery of one failed notification succeeds and closes the circuit on
// every worker; POST /v1/receivers/{id}/recover then brings the other failed
// notifications to the receiver within 5 s (before the shared circuit, the
// workers waited out the 30 s cool-down: 31 s).
func TestRecoveredReceiverGetsItsNotificationsWithinFiveSeconds(t *testing.T) {
	faultTest(t)
	ctx := context.Background()
	var broken atomic.Bool
	broken.Store(true)
	rs := newReceivers(t, 1, func(int, string, int) (time.Duration, int) {
		if broken.Load() {
			return 10 * time.Millisecond, http.StatusInternalServerError
		}
		return 10 * time.Millisecond, http.StatusOK
	})
	c := newCluster(t, "", map[string]string{
		// 5 notifications × 2 attempts: the fleet's tenth failure, which
		// opens the circuit, is the last attempt of the last notification.
		"NOTIFYD_RETRY_MAX_ATTEMPTS": "2",
		"NOTIFYD_BREAKER_COOLDOWN":   "30s",
	})
	rdb := c.redis(t)
	_, a := c.startAPI()
	rid := a.createReceiver("healing", rs.URL(0))
	receiver := uuid.MustParse(rid)
	c.start("worker", nil)
	c.start("worker", nil)

	failed := a.ingestAll([]string{rid}, 5, 5)
	c.waitTerminal(t, 5, time.Minute)
	if _, open, err := circuit.Get(ctx, rdb, receiver); err != nil || !open {
		t.Fatalf("after ten failures the fleet's circuit must be open: open=%v err=%v", open, err)
	}
	// While it is open no worker sends: new notifications wait.
	var held []string
	for i := range 4 {
		held = append(held, a.ingest(rid, "held-"+strconv.Itoa(i)))
	}
	time.Sleep(2 * time.Second)
	for _, id := range held {
		if n := len(rs.SeenAttempts()[id]); n != 0 {
			t.Fatalf("notification %s sent %d times while the circuit was open", id, n)
		}
	}

	broken.Store(false)
	var redo struct{ Redelivery int }
	if code, raw, err := a.Try("POST", "/v1/notifications/"+failed[0]+"/redeliver", adminToken, nil, &redo); err != nil || code != http.StatusAccepted {
		t.Fatalf("redeliver: %d %s %v", code, raw, err)
	}
	waitFor(t, "the manual redelivery to succeed", 10*time.Second, func() bool { return manualAnswered(rs, failed[0]) })
	answered := time.Now()
	waitFor(t, "the manual success to close the fleet's circuit", time.Second, func() bool {
		_, open, err := circuit.Get(ctx, rdb, receiver)
		return err == nil && !open
	})
	t.Logf("circuit closed %s after the manual redelivery's answer", time.Since(answered).Round(time.Millisecond))
	// The receiver's answer comes before the attempt's record: recover
	// must find the redelivered notification delivered, not failed.
	waitFor(t, "the manual redelivery to be recorded", 5*time.Second, func() bool {
		return c.countStatus(t, failed[:1], "delivered") == 1
	})

	var rec struct{ Recovered int }
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	recovered := time.Now()
	if code, raw, err := a.Try("POST", "/v1/receivers/"+rid+"/recover", adminToken, map[string]any{"since": since}, &rec); err != nil || code != http.StatusAccepted {
		t.Fatalf("recover: %d %s %v", code, raw, err)
	}
	if rec.Recovered != len(failed)-1 {
		t.Fatalf("recovered %d, want the %d still failed", rec.Recovered, len(failed)-1)
	}
	waitFor(t, "the recovered notifications to be delivered", 5*time.Second, func() bool {
		return c.countStatus(t, failed, "delivered") == len(failed)
	})
	took := time.Since(recovered)
	seen := rs.SeenAttempts()
	for _, id := range failed[1:] {
		if seen[id][3] != 1 {
			t.Errorf("%s: the receiver got its recovered attempt 3 %d times, want once", id, seen[id][3])
		}
	}
	t.Logf("recovered notifications delivered %s after recover", took.Round(time.Millisecond))
}

// manualAnswered reports whether a manual redelivery of id was answered 200.
func manualAnswered(rs *receivers, id string) bool {
	for _, r := range rs.Snapshot() {
		if r.ID == id && r.Attempt <= 0 && r.Code == http.StatusOK {
			return true
		}
	}
	return false
}

// redis is a client of the cluster's Redis, closed when the test ends.
func (c *cluster) redis(t *testing.T) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(c.redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// countStatus counts the notifications among ids that have status.
func (c *cluster) countStatus(t *testing.T, ids []string, status string) int {
	t.Helper()
	var n int
	if err := c.db.QueryRow(context.Background(),
		`SELECT count(*) FROM notifications WHERE id::text = ANY($1) AND status::text = $2`, ids, status).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// ingest sends one notification over HTTP and returns its id.
func (a *api) ingest(receiverID, key string) string {
	a.t.Helper()
	var out struct{ ID string }
	code, raw, err := a.Try("POST", "/v1/notifications", producerToken, map[string]any{
		"receiver_id": receiverID, "event_type": "trade.paid", "idempotency_key": key, "payload": map[string]any{"k": key},
	}, &out)
	if err != nil || code != http.StatusAccepted {
		a.t.Fatalf("ingest %s: %d %s %v", key, code, raw, err)
	}
	return out.ID
}
