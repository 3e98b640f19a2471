package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/notifier"
)

// producer is an application with its own database (a business table and
// the outbox) that notifies through the outbox.
type producer struct {
	t      *testing.T
	url    string
	pool   *pgxpool.Pool
	client *notifier.Client
	// notifyd is notifyd's database, which the relay confirms against.
	notifyd *store.Store
}

func newProducer(t *testing.T, s *stack) *producer {
	t.Helper()
	ctx := context.Background()
	url, pool := testenv.Pool(t) // a database of its own, not notifyd's
	if err := notifier.MigrateOutbox(ctx, pool, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE orders (id text PRIMARY KEY, status text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return &producer{t: t, url: url, pool: pool, client: s.notifier, notifyd: s.store}
}

// pay records an order as paid and its notification in one transaction,
// which commits or rolls back as told. It returns the notification id.
func (p *producer) pay(receiverID, order string, commit bool) string {
	p.t.Helper()
	id, err := p.tryPay(receiverID, order, commit)
	if err != nil {
		p.t.Fatal(err)
	}
	return id
}

func (p *producer) tryPay(receiverID, order string, commit bool) (string, error) {
	ctx := context.Background()
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO orders (id, status) VALUES ($1, 'paid')`, order); err != nil {
		return "", err
	}
	id, err := p.client.EnqueueTx(ctx, tx, notifier.Notification{
		ReceiverID: receiverID, EventType: "trade.paid", IdempotencyKey: order,
		Payload: json.RawMessage(`{"order":"` + order + `"}`),
	})
	if err != nil {
		return "", err
	}
	if commit {
		err = tx.Commit(ctx)
	} else {
		err = tx.Rollback(ctx)
	}
	return id, err
}

// relay runs a relay in this process until the test ends. It confirms
// through notifyd's database, as `notifyd relay` does.
func (p *producer) relay(opts ...notifier.RelayOption) {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	defaults := []notifier.RelayOption{notifier.WithRelayPollInterval(100 * time.Millisecond),
		notifier.WithRelayConfirmer(notifier.DatabaseConfirmer(p.notifyd.Pool()))}
	r := notifier.NewRelay(p.pool, p.client, append(defaults, opts...)...)
	go func() { done <- r.Run(ctx) }()
	p.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			p.t.Errorf("relay: %v", err)
		}
	})
}

func (p *producer) count(where string) int {
	p.t.Helper()
	var n int
	if err := p.pool.QueryRow(context.Background(), `SELECT count(*) FROM notifyd_outbox WHERE `+where).Scan(&n); err != nil {
		p.t.Fatal(err)
	}
	return n
}

// waitRows waits until n outbox rows match where (sent_at IS NOT NULL, say).
func (p *producer) waitRows(where string, n int, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for p.count(where) != n {
		if time.Now().After(deadline) {
			p.t.Fatalf("%d of %d outbox rows with %s after %s", p.count(where), n, where, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// payMany commits n orders, each with its notification, and returns the ids.
func (p *producer) payMany(receiverID, prefix string, n int) []string {
	p.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = p.pay(receiverID, fmt.Sprintf("%s-%d", prefix, i), true)
	}
	return ids
}

// waitQueuesIdle waits until notifyd has no task left in Redis: whatever
// the relays enqueued has been processed.
func (s *stack) waitQueuesIdle(timeout time.Duration) {
	s.t.Helper()
	insp := asynq.NewInspectorFromRedisClient(s.rdb)
	deadline := time.Now().Add(timeout)
	for {
		queues, err := insp.Queues() // GetQueueInfo fails on a queue never used
		if err != nil {
			s.t.Fatal(err)
		}
		busy := 0
		for _, q := range queues {
			info, err := insp.GetQueueInfo(q)
			if err != nil {
				s.t.Fatal(err)
			}
			busy += info.Size
		}
		if busy == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d tasks still in Redis after %s", busy, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deliveredOnce checks that notification id was delivered by exactly one
// attempt on record.
func (s *stack) deliveredOnce(id string) {
	s.t.Helper()
	n := s.waitStatus(id, store.StatusDelivered, 15*time.Second)
	if as := s.attempts(id); n.Attempts != 1 || len(as) != 1 {
		s.t.Errorf("%s: %d attempts counted, %d on record; want 1", id, n.Attempts, len(as))
	}
}

func TestOutboxCommitDeliversOnceRollbackNever(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	rs := newReceiverServer(t, statusResponder(200))
	r := s.receiver(rs.URL, nil)
	p := newProducer(t, s)
	p.relay()

	paid := p.pay(r.ID, "order-paid", true)
	cancelled := p.pay(r.ID, "order-cancelled", false)
	s.deliveredOnce(paid)
	// Let the relay go round a few more times (100 ms poll) before
	// concluding that the rolled-back notification never comes.
	time.Sleep(time.Second)
	s.waitQueuesIdle(10 * time.Second)

	if got := hitsByID(t, rs); len(got) != 1 || got[paid] != 1 {
		t.Errorf("receiver got %v, want one request for %s", got, paid)
	}
	if _, err := s.store.GetNotification(context.Background(), uuid.MustParse(cancelled)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rolled-back notification %s: err = %v, want not found", cancelled, err)
	}
	if n := p.count("true"); n != 1 || p.count("sent_at IS NOT NULL AND attempts = 1") != 1 {
		t.Errorf("%d outbox rows; want the committed one, sent once", n)
	}
	var orders int
	p.pool.QueryRow(context.Background(), `SELECT count(*) FROM orders`).Scan(&orders)
	if orders != 1 {
		t.Errorf("%d orders; the rollback should have taken its order with it", orders)
	}
}

// Environment of the child process that runs a relay to be killed.
const (
	relayChildEnv     = "NOTIFYD_E2E_RELAY_CHILD"
	relayChildDB      = "NOTIFYD_E2E_RELAY_DB"
	relayChildNotifyd = "NOTIFYD_E2E_RELAY_NOTIFYD_DB"
	relayChildRedis   = "NOTIFYD_E2E_RELAY_REDIS"
)

// relayChild is the killed relay: it enqueues a batch, announces it on
// stdout and stops before marking the rows sent, until SIGKILL.
func relayChild(t *testing.T) {
	stop := notifier.WithRelayAfterEnqueue(func(ids []int64) {
		fmt.Printf("ENQUEUED %d\n", len(ids))
		time.Sleep(time.Hour)
	})
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(relayChildDB))
	if err != nil {
		t.Fatal(err)
	}
	notifyd, err := pgxpool.New(ctx, os.Getenv(relayChildNotifyd))
	if err != nil {
		t.Fatal(err)
	}
	addr, db, _ := strings.Cut(os.Getenv(relayChildRedis), "/")
	n, _ := strconv.Atoi(db)
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: n})
	client := notifier.NewFromRedisClient(rdb, notifier.WithAllowPrivateTargets(true))
	err = notifier.NewRelay(pool, client, notifier.WithRelayPollInterval(100*time.Millisecond),
		notifier.WithRelayConfirmer(notifier.DatabaseConfirmer(notifyd)), stop).Run(ctx)
	t.Fatalf("relay returned instead of being killed: %v", err)
}

func TestOutboxRelayKilledBetweenEnqueueAndMark(t *testing.T) {
	if os.Getenv(relayChildEnv) == "1" {
		relayChild(t)
		return
	}
	t.Parallel()
	// The slow notification is still being delivered when the second relay
	// re-enqueues it (Asynq refuses the duplicate task id); the fast one is
	// delivered by then (the worker finds it on record and sends nothing).
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	var slowID atomic.Value
	slowID.Store("")
	rs := newReceiverServer(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("webhook-id") == slowID.Load().(string) {
			select {
			case <-release:
			case <-time.After(25 * time.Second):
			}
		}
		w.WriteHeader(http.StatusOK)
	})
	t.Cleanup(unblock) // before rs.Close, which waits for the handler
	s := newStack(t, withTimeout(30*time.Second))
	r := s.receiver(rs.URL, nil)
	p := newProducer(t, s)
	slow := p.pay(r.ID, "order-slow", true)
	slowID.Store(slow)
	fast := p.pay(r.ID, "order-fast", true)

	opt := s.rdb.Options()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOutboxRelayKilledBetweenEnqueueAndMark$", "-test.count=1")
	cmd.Env = append(os.Environ(), relayChildEnv+"=1", relayChildDB+"="+p.url, relayChildNotifyd+"="+s.store.Pool().Config().ConnString(),
		fmt.Sprintf("%s=%s/%d", relayChildRedis, opt.Addr, opt.DB))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("relay child stderr:\n%s", stderr.String())
		}
	})
	announced := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ENQUEUED") {
				announced <- sc.Text()
			}
		}
		cmd.Wait()
	}()
	select {
	case line := <-announced:
		if line != "ENQUEUED 2" {
			t.Fatalf("child relay: %q, want both rows in one batch", line)
		}
	case <-exited:
		t.Fatalf("child relay exited early:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("child relay did not enqueue within 30 s")
	}

	// The child has enqueued and not marked: the worker takes the tasks.
	s.waitStatus(fast, store.StatusDelivered, 15*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for hitsByID(t, rs)[slow] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the slow notification never reached the receiver")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := p.count("sent_at IS NULL"); n != 2 {
		t.Fatalf("%d rows unsent before the kill, want 2", n)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL", cmd.ProcessState)
	}
	if n := p.count("sent_at IS NULL"); n != 2 {
		t.Fatalf("%d rows unsent after the kill, want 2 (the kill must land before marking)", n)
	}

	// A fresh relay finds both rows unsent and enqueues them again.
	p.relay()
	p.waitRows("sent_at IS NOT NULL", 2, 15*time.Second)
	unblock()
	s.deliveredOnce(slow)
	s.deliveredOnce(fast)
	s.waitQueuesIdle(15 * time.Second)
	if got := hitsByID(t, rs); len(got) != 2 || got[slow] != 1 || got[fast] != 1 {
		t.Errorf("receiver got %v, want exactly one request each for %s and %s", got, slow, fast)
	}
}

// relayCounter is a slog handler that adds up the rows a relay reports
// relayed.
type relayCounter struct{ n *atomic.Int64 }

func (h relayCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h relayCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "outbox rows relayed" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "count" {
				h.n.Add(a.Value.Int64())
			}
			return true
		})
	}
	return nil
}
func (h relayCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h relayCounter) WithGroup(string) slog.Handler      { return h }

func TestOutboxTwoRelaysSendEachNotificationOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	rs := newReceiverServer(t, statusResponder(200))
	r := s.receiver(rs.URL, nil)
	p := newProducer(t, s)

	const backlog, live = 200, 100
	ids := p.payMany(r.ID, "order", backlog)
	// Two relays, small batches, so that they compete for the same rows.
	counts := []*atomic.Int64{new(atomic.Int64), new(atomic.Int64)}
	for _, c := range counts {
		p.relay(notifier.WithRelayBatchSize(5), notifier.WithRelayLogger(slog.New(relayCounter{c})))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range live {
		wg.Go(func() {
			id, err := p.tryPay(r.ID, fmt.Sprintf("live-order-%d", i), true)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("pay: %v", err)
				return
			}
			ids = append(ids, id)
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	p.waitRows("sent_at IS NOT NULL", backlog+live, 30*time.Second)
	for _, id := range ids {
		s.deliveredOnce(id)
	}
	s.waitQueuesIdle(15 * time.Second)
	a, b := counts[0].Load(), counts[1].Load()
	t.Logf("relay A sent %d rows, relay B %d", a, b)
	if a+b != backlog+live {
		t.Errorf("relays reported %d+%d rows sent, want %d in all: a row was sent twice", a, b, backlog+live)
	}
	if n := p.count("sent_at IS NOT NULL AND attempts = 1"); n != backlog+live {
		t.Errorf("%d rows sent on the first try, want %d", n, backlog+live)
	}
	got := hitsByID(t, rs)
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("%s: %d requests, want 1", id, got[id])
		}
	}
	if len(got) != len(ids) {
		t.Errorf("receiver got %d notifications, want %d", len(got), len(ids))
	}
}
