package faults

import (
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/fleet"
)

// TestPostgresUnavailable30s cuts the worker off from Postgres for 30 s while
// it is busy (through a TCP proxy; the shared server keeps running) and
// checks that the worker neither crashes nor fails notifications because of
// its own database, that the attempts made during the outage are recorded
// once it is back, and that everything completes.
func TestPostgresUnavailable30s(t *testing.T) {
	faultTest(t)
	start := time.Now()
	const (
		notifications = 800
		receiverCount = 20
		outage        = 30 * time.Second
	)
	// Every fourth receiver refuses a third of first attempts, so retries
	// are due during the outage; every notification is delivered by attempt
	// 2. (Refusing every first attempt would look like a dead receiver and
	// trip the worker's circuit breaker, which is not under test here.)
	rs := newReceivers(t, receiverCount, func(idx int, id string, attempt int) (time.Duration, int) {
		delay := time.Duration(200+roll("delay", id, attempt)%200) * time.Millisecond
		if idx%4 == 0 && attempt == 1 && roll("refuse", id, attempt)%3 == 0 {
			return delay, 503
		}
		return delay, 200
	})
	c := newCluster(t, "", map[string]string{
		"NOTIFYD_WORKER_CONCURRENCY": "50",
		"NOTIFYD_RETRY_MAX_ATTEMPTS": "5",
	})
	proxy, err := fleet.NewProxy(dbHostPort(t, c.dbURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)

	// The API talks to Postgres directly: only the worker loses it.
	_, a := c.startAPI()
	receiverIDs := a.createReceivers(rs)
	ids := a.ingestAll(receiverIDs, notifications, 16)

	w, _ := c.start("worker", map[string]string{"NOTIFYD_DATABASE_URL": withHost(t, c.dbURL, proxy.Addr())})
	waitFor(t, "the worker to be busy", 60*time.Second, func() bool {
		return rs.Completed() >= 150 && rs.Active() >= 20
	})
	proxy.Cut()
	cutAt := time.Now()
	t.Logf("Postgres cut off with %d requests in flight, %d answered before", rs.Active(), rs.Completed())
	for time.Since(cutAt) < outage {
		if !w.Running() {
			t.Fatalf("worker exited during the database outage: %v", w.WaitErr())
		}
		time.Sleep(500 * time.Millisecond)
	}
	proxy.Restore()
	restoredAt := time.Now()
	t.Logf("Postgres back after %s; %d connections refused meanwhile", restoredAt.Sub(cutAt).Round(time.Millisecond), proxy.Refused())

	c.waitTerminal(t, notifications, 2*time.Minute)
	if !w.Running() {
		t.Fatalf("worker exited: %v", w.WaitErr())
	}

	aud := checkRecords(t, c, rs, ids)
	if aud.failed != 0 {
		t.Errorf("%d notifications failed; every receiver accepts by attempt 2, so the outage failed them", aud.failed)
	}
	// No process died during a send, so every request the receivers got is
	// recorded, once.
	for id, extra := range aud.extra {
		if extra != 0 {
			t.Errorf("%s: receivers got %d requests more than recorded attempts", id, extra)
		}
	}
	// The fault must really have hit: the worker tried to reach Postgres
	// during the outage, and deliveries finished while it was away (their
	// attempts had to be held and written later).
	if proxy.Refused() == 0 {
		t.Error("the worker never tried to reach Postgres during the outage")
	}
	during := 0
	for _, r := range rs.Snapshot() {
		if !r.End.IsZero() && r.End.After(cutAt) && r.End.Before(restoredAt) && !r.Aborted {
			during++
		}
	}
	if during == 0 {
		t.Error("no delivery finished while Postgres was away")
	}
	t.Logf("%d deliveries answered during the outage were recorded afterwards; test took %s", during, time.Since(start).Round(time.Second))
}
