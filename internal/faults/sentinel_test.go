package faults

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/fleet"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/notifier"
)

// TestSentinelFailover SIGKILLs the Redis master of a real Sentinel set-up
// (master, replica, three sentinels) while notifications arrive three ways at
// once: HTTP ingest, the Go client (Notify) and the outbox (EnqueueTx, moved
// by `notifyd relay` with NOTIFYD_RELAY_REPLICA_ACK=1), to healthy and flaky
// receivers. Every notifyd process has the Sentinel URL in NOTIFYD_REDIS_URL
// and must follow the promoted replica. Afterwards every HTTP-ingested and
// every outbox notification is terminal, every attempt a receiver saw is on
// record and no attempt number is recorded twice (checkRecords). Redis
// replicates asynchronously, so Notify calls acknowledged just before the
// kill may be lost: the test reports how many.
func TestSentinelFailover(t *testing.T) {
	faultTest(t)
	lost := sentinelFailover(t, nil)
	t.Logf("Go client without WithReplicaAck: %d acknowledged notifications lost in the failover", lost)
}

// TestSentinelFailoverReplicaAck is the same fault with the Go client using
// WithReplicaAck(1, 2s): a Notify that returned nil had reached the replica,
// so none may be lost.
func TestSentinelFailoverReplicaAck(t *testing.T) {
	faultTest(t)
	lost := sentinelFailover(t, []notifier.Option{notifier.WithReplicaAck(1, 2*time.Second)})
	if lost != 0 {
		t.Errorf("%d notifications acknowledged by Notify with WithReplicaAck(1) are lost", lost)
	}
}

// sentinelLoad is what each of the three producers sends.
const sentinelLoad = 200

// sentinelFailover runs the fault and returns how many notifications the Go
// client (with goOpts) had acknowledged that never reached notifyd.
func sentinelFailover(t *testing.T, goOpts []notifier.Option) int {
	start := time.Now()
	ss := startSentinelSet(t)
	const receiverCount = 6
	rs := newReceivers(t, receiverCount, func(idx int, id string, attempt int) (time.Duration, int) {
		delay := time.Duration(20+roll("delay", id, attempt)%80) * time.Millisecond
		if idx%3 == 0 && attempt == 1 && roll("refuse", id, attempt)%3 == 0 {
			return delay, 503 // flaky: a third of first attempts fail
		}
		return delay, 200
	})
	c := newCluster(t, ss.url(), map[string]string{"NOTIFYD_WORKER_CONCURRENCY": "20"})
	_, a := c.startAPI()
	receiverIDs := a.createReceivers(rs)
	producerURL := testenv.Database(t)
	outbox, err := pgxpool.New(context.Background(), producerURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(outbox.Close)
	if err := notifier.MigrateOutbox(context.Background(), outbox, ""); err != nil {
		t.Fatal(err)
	}
	c.start("worker", nil)
	c.start("scheduler", nil)
	c.start("relay", map[string]string{"NOTIFYD_OUTBOX_DATABASE_URL": producerURL, "NOTIFYD_RELAY_REPLICA_ACK": "1"})
	goClient, err := notifier.NewFromURL(ss.url(), append([]notifier.Option{notifier.WithAllowPrivateTargets(true)}, goOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer goClient.Close()

	p := &producers{t: t, receivers: receiverIDs}
	p.run("http", func(ctx context.Context, n notifier.Notification) (string, error) {
		var out struct{ ID string }
		code, raw, err := a.Try("POST", "/v1/notifications", producerToken, map[string]any{
			"receiver_id": n.ReceiverID, "event_type": n.EventType, "idempotency_key": n.IdempotencyKey, "payload": n.Payload,
		}, &out)
		if err == nil && code != http.StatusAccepted {
			err = fmt.Errorf("ingest: %d %s", code, raw)
		}
		return out.ID, err
	})
	p.run("go", goClient.Notify)
	p.run("outbox", func(ctx context.Context, n notifier.Notification) (string, error) {
		tx, err := outbox.Begin(ctx)
		if err != nil {
			return "", err
		}
		defer tx.Rollback(ctx)
		id, err := goClient.EnqueueTx(ctx, tx, n)
		if err != nil {
			return "", err
		}
		return id, tx.Commit(ctx)
	})
	waitFor(t, "a third of the load to be sent and deliveries under way", 60*time.Second, func() bool {
		return p.sent.Load() >= sentinelLoad && rs.Completed() >= 50
	})
	failover := ss.killMaster()
	t.Logf("failover: master SIGKILLed, replica promoted and answering as master after %s (%d notifications sent, %d requests in flight)",
		failover.Round(time.Millisecond), p.sent.Load(), rs.Active())
	p.wg.Wait()
	t.Logf("producers done %s after the start; retried calls: http %d, go %d, outbox %d",
		time.Since(start).Round(time.Second), p.retries["http"].Load(), p.retries["go"].Load(), p.retries["outbox"].Load())

	ids := append(p.ok("http"), p.ok("outbox")...)
	c.waitTerminal(t, len(ids), 60*time.Second)
	waitQueuesEmpty(t, ss.url(), 60*time.Second)
	c.waitTerminal(t, len(ids), 30*time.Second)
	notes := c.load(t)
	lost := 0
	for _, id := range p.ok("go") {
		if notes[id] == nil {
			lost++
		} else {
			ids = append(ids, id)
		}
	}
	checkRecords(t, c, rs, ids)
	t.Logf("Go client: %d of %d acknowledged notifications lost; test took %s", lost, sentinelLoad, time.Since(start).Round(time.Second))
	return lost
}

// producers sends sentinelLoad notifications per source, one after another
// with a short pause, each retried with the same key until it is accepted,
// as a producer would: the failover interrupts them.
type producers struct {
	t         *testing.T
	receivers []string
	wg        sync.WaitGroup
	sent      atomic.Int64
	mu        sync.Mutex
	accepted  map[string][]string
	retries   map[string]*atomic.Int64
}

func (p *producers) run(source string, send func(context.Context, notifier.Notification) (string, error)) {
	p.mu.Lock()
	if p.accepted == nil {
		p.accepted, p.retries = make(map[string][]string), make(map[string]*atomic.Int64)
	}
	p.retries[source] = new(atomic.Int64)
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		deadline := time.Now().Add(60 * time.Second)
		for i := range sentinelLoad {
			n := notifier.Notification{
				ReceiverID: p.receivers[i%len(p.receivers)], EventType: "trade.paid",
				IdempotencyKey: source + "-" + strconv.Itoa(i), Payload: []byte(`{"i":` + strconv.Itoa(i) + `}`),
			}
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				id, err := send(ctx, n)
				cancel()
				if err == nil {
					p.mu.Lock()
					p.accepted[source] = append(p.accepted[source], id)
					p.mu.Unlock()
					break
				}
				p.retries[source].Add(1)
				if time.Now().After(deadline) {
					p.t.Errorf("%s producer: %s not accepted after 60 s: %v", source, n.IdempotencyKey, err)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			p.sent.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

// ok is the ids source had accepted.
func (p *producers) ok(source string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.accepted[source]...)
}

// waitQueuesEmpty waits until notifyd's Asynq queues are idle
// (fleet.WaitQueuesIdle).
func waitQueuesEmpty(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	last, err := fleet.WaitQueuesIdle(url, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Asynq queues idle: %s", last)
}

// TestAllWithSentinel runs `notifyd all`, the demo's one-process set-up,
// with a Sentinel URL in NOTIFYD_REDIS_URL and delivers a notification
// ingested over HTTP and one sent by the Go client built from the same URL.
func TestAllWithSentinel(t *testing.T) {
	faultTest(t)
	ss := startSentinelSet(t)
	rs := newReceivers(t, 1, func(int, string, int) (time.Duration, int) { return 0, 200 })
	c := newCluster(t, ss.url(), nil)
	// As the demo runs it: migrations on start (the URL without the pool
	// size parameter, which the migration driver does not take).
	_, base := c.start("all", map[string]string{"NOTIFYD_DATABASE_URL": c.dbURL})
	a := &api{Client: apitest.NewClient(t, base), t: t}
	receiver := a.createReceiver("merchant", rs.URL(0))
	ids := a.ingestAll([]string{receiver}, 1, 1)
	client, err := notifier.NewFromURL(ss.url(), notifier.WithAllowPrivateTargets(true))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var goID string
	waitFor(t, "the Go client to be accepted (registry synced)", 30*time.Second, func() bool {
		goID, err = client.Notify(context.Background(), notifier.Notification{
			ReceiverID: receiver, EventType: "demo.ping", IdempotencyKey: "go-1", Payload: []byte(`{}`),
		})
		return err == nil
	})
	if _, err := uuid.Parse(goID); err != nil {
		t.Fatalf("Notify id %q: %v", goID, err)
	}
	ids = append(ids, goID)
	c.waitTerminal(t, 2, 30*time.Second)
	if aud := checkRecords(t, c, rs, ids); aud.delivered != 2 {
		t.Errorf("%d of 2 notifications delivered through notifyd all on Sentinel", aud.delivered)
	}
}
