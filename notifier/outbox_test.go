package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

// producerDB is a producer's database with the outbox table in it.
func producerDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	_, pool := testenv.Pool(t)
	if err := MigrateOutbox(context.Background(), pool, ""); err != nil {
		t.Fatal(err)
	}
	return pool
}

// offlineClient has a Redis that does not exist: what EnqueueTx needs must
// not include Redis.
func offlineClient(t *testing.T, opts ...Option) *Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	c := NewFromRedisClient(rdb, opts...)
	t.Cleanup(func() { c.Close(); rdb.Close() })
	return c
}

func validNotification(receiver uuid.UUID, key string) Notification {
	return Notification{ReceiverID: receiver.String(), EventType: "trade.paid", IdempotencyKey: key, Payload: json.RawMessage(`{"amount": 100, "z": 1, "a": 2}`)}
}

func countRows(t *testing.T, pool *pgxpool.Pool, where string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM notifyd_outbox WHERE `+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnqueueTxValidatesLikeNotify(t *testing.T) {
	t.Parallel()
	pool := producerDB(t)
	c := offlineClient(t, WithMaxPayloadSize(64))
	receiver := uuid.New()
	tests := []struct {
		name  string
		edit  func(*Notification)
		field string
	}{
		{"receiver not a uuid", func(n *Notification) { n.ReceiverID = "merchant-1" }, "receiver_id"},
		{"no event type", func(n *Notification) { n.EventType = "" }, "event_type"},
		{"control character in key", func(n *Notification) { n.IdempotencyKey = "a\nb" }, "idempotency_key"},
		{"loopback callback", func(n *Notification) { n.CallbackURL = "http://127.0.0.1/hook" }, "callback_url"},
		{"payload not JSON", func(n *Notification) { n.Payload = json.RawMessage(`{"a":`) }, "payload"},
		{"payload too large", func(n *Notification) { n.Payload = json.RawMessage(`"` + strings.Repeat("x", 100) + `"`) }, "payload"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := validNotification(receiver, "order-1")
			tc.edit(&n)
			tx, err := pool.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			_, err = c.EnqueueTx(context.Background(), tx, n)
			var ve *ValidationError
			if !errors.Is(err, ErrInvalidNotification) || !errors.As(err, &ve) || ve.Field != tc.field {
				t.Fatalf("err = %v (%T), want *ValidationError on %s", err, err, tc.field)
			}
			// The refusal happens before any SQL: the producer's
			// transaction is still usable.
			if err := tx.Commit(context.Background()); err != nil {
				t.Fatalf("producer transaction broken by a validation error: %v", err)
			}
		})
	}
	if n := countRows(t, pool, "true"); n != 0 {
		t.Errorf("%d rows written for invalid notifications", n)
	}

	// Valid, with Redis unreachable: the outbox does not depend on it.
	n := validNotification(receiver, "order-1")
	id, err := c.EnqueueTx(context.Background(), pool, n)
	if err != nil {
		t.Fatalf("EnqueueTx with Redis down: %v", err)
	}
	if want := tasks.NotificationID(receiver, "order-1").String(); id != want {
		t.Errorf("id %s, want the id Notify gives, %s", id, want)
	}
	var payload []byte
	var nid uuid.UUID
	if err := pool.QueryRow(context.Background(), `SELECT notification_id, payload FROM notifyd_outbox`).Scan(&nid, &payload); err != nil {
		t.Fatal(err)
	}
	if nid.String() != id || string(payload) != string(n.Payload) {
		t.Errorf("row: id %s payload %s", nid, payload)
	}

	// A table that does not exist fails the producer's statement, loudly.
	other := offlineClient(t, WithOutboxTable("no_such_outbox"))
	if _, err := other.EnqueueTx(context.Background(), pool, n); err == nil || !strings.Contains(err.Error(), "no_such_outbox") {
		t.Errorf("missing table: err = %v", err)
	}
	bad := offlineClient(t, WithOutboxTable("outbox; DROP TABLE x"))
	if _, err := bad.EnqueueTx(context.Background(), pool, n); !errors.Is(err, ErrInvalidOutboxTable) {
		t.Errorf("bad table name: err = %v", err)
	}
}

func TestMigrateOutbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := testenv.Pool(t)
	// Concurrent start-ups of several producer processes.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- MigrateOutbox(ctx, pool, "") })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := MigrateOutbox(ctx, pool, ""); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if err := MigrateOutbox(ctx, pool, "orders_outbox"); err != nil {
		t.Fatal(err)
	}
	var indexes []string
	rows, _ := pool.Query(ctx, `SELECT indexname FROM pg_indexes WHERE tablename IN ('notifyd_outbox', 'orders_outbox') ORDER BY 1`)
	for rows.Next() {
		var s string
		rows.Scan(&s)
		indexes = append(indexes, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := "notifyd_outbox_confirmed_idx notifyd_outbox_pkey notifyd_outbox_unconfirmed_idx notifyd_outbox_unsent_idx " +
		"orders_outbox_confirmed_idx orders_outbox_pkey orders_outbox_unconfirmed_idx orders_outbox_unsent_idx"
	if got := strings.Join(indexes, " "); got != want {
		t.Errorf("indexes %q, want %q", got, want)
	}
	// EnqueueTx and the custom table agree.
	c := offlineClient(t, WithOutboxTable("orders_outbox"))
	if _, err := c.EnqueueTx(ctx, pool, validNotification(uuid.New(), "k")); err != nil {
		t.Fatal(err)
	}
	if err := MigrateOutbox(ctx, pool, "Orders"); !errors.Is(err, ErrInvalidOutboxTable) {
		t.Errorf("upper-case name: %v", err)
	}
	if s, _ := OutboxSchema(""); s != outboxSQL {
		t.Error("OutboxSchema(\"\") is not the shipped notifier/outbox.sql")
	}
}

// relayFixture is a producer database, a Redis and a client whose registry
// knows one active and one inactive receiver.
type relayFixture struct {
	pool             *pgxpool.Pool
	rdb              *redis.Client
	client           *Client
	relay            *Relay
	active, inactive uuid.UUID
}

func newRelayFixture(t *testing.T, loadRegistry bool, opts ...RelayOption) *relayFixture {
	t.Helper()
	f := &relayFixture{pool: producerDB(t), rdb: redis.NewClient(testenv.Redis(t)), active: uuid.New(), inactive: uuid.New()}
	t.Cleanup(func() { f.rdb.Close() })
	if loadRegistry {
		f.loadRegistry(t)
	}
	f.client = NewFromRedisClient(f.rdb, WithAllowPrivateTargets(true))
	t.Cleanup(func() { f.client.Close() })
	// The producer's test database is a copy of notifyd's schema too: it
	// stands in for notifyd's database, which the relay confirms against.
	f.relay = NewRelay(f.pool, f.client, append([]RelayOption{WithRelayConfirmer(DatabaseConfirmer(f.pool))}, opts...)...)
	return f
}

func (f *relayFixture) loadRegistry(t *testing.T) {
	t.Helper()
	if err := registry.Sync(context.Background(), f.rdb, map[uuid.UUID]bool{f.active: true, f.inactive: false}); err != nil {
		t.Fatal(err)
	}
}

func (f *relayFixture) enqueue(t *testing.T, n Notification) string {
	t.Helper()
	id, err := f.client.EnqueueTx(context.Background(), f.pool, n)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// pending lists the first-attempt tasks waiting in Redis, in queue order,
// batch members included.
func (f *relayFixture) pending(t *testing.T) []*tasks.Deliver {
	t.Helper()
	// After a flush, Asynq's client does not register the queue again (it
	// remembers having done so), so the Inspector would report it missing
	// while workers still serve it.
	if err := f.rdb.SAdd(context.Background(), "asynq:queues", tasks.QueueFirst).Err(); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(f.rdb)
	infos, err := insp.ListPendingTasks(tasks.QueueFirst)
	if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
		t.Fatal(err)
	}
	// The relay queues a round's rows as one batch task (internal/enqueue),
	// or an ordinary task when it holds one: the members, in order.
	var out []*tasks.Deliver
	for _, info := range infos {
		if info.Type == tasks.TypeBatch {
			members, err := tasks.DecodeBatch(info.Payload)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, members...)
			continue
		}
		d, err := tasks.Decode(info.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if info.ID != d.TaskID() {
			t.Errorf("task id %s for %s", info.ID, d.TaskID())
		}
		out = append(out, d)
	}
	return out
}

func TestRelaySendsInOrderAndKillsUndeliverableRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRelayFixture(t, false)

	var ids []string
	for _, key := range []string{"k1", "k2", "k3"} {
		ids = append(ids, f.enqueue(t, validNotification(f.active, key)))
	}

	// Registry not loaded (notifyd not synced yet): nothing can be decided,
	// so nothing is sent and nothing is killed; the row says why.
	if n, err := f.relay.relayBatch(ctx, DefaultOutboxTable); !errors.Is(err, ErrRegistryUnavailable) || n != 3 {
		t.Fatalf("relayBatch with registry unloaded = %d, %v", n, err)
	}
	var attempts int
	var lastErr string
	if err := f.pool.QueryRow(ctx, `SELECT attempts, last_error FROM notifyd_outbox ORDER BY id LIMIT 1`).Scan(&attempts, &lastErr); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || !strings.Contains(lastErr, "registry") || countRows(t, f.pool, "sent_at IS NULL AND dead_at IS NULL") != 3 || len(f.pending(t)) != 0 {
		t.Fatalf("after registry outage: attempts %d, last_error %q, pending %d", attempts, lastErr, len(f.pending(t)))
	}

	f.loadRegistry(t)
	f.enqueue(t, validNotification(f.inactive, "k4"))
	f.enqueue(t, validNotification(uuid.New(), "k5")) // unknown receiver
	ids = append(ids, f.enqueue(t, validNotification(f.active, "k6")))
	// Rows written by plain SQL (a producer in another language) are
	// checked as well.
	if _, err := f.pool.Exec(ctx, `INSERT INTO notifyd_outbox (notification_id, receiver_id, event_type, idempotency_key, payload)
		VALUES ($1, $2, 'trade.paid', 'k7', '{"a":1}'), ($3, $2, 'trade.paid', 'k8', 'not json')`,
		uuid.New(), f.active, tasks.NotificationID(f.active, "k8")); err != nil {
		t.Fatal(err)
	}

	if n, err := f.relay.relayBatch(ctx, DefaultOutboxTable); err != nil || n != 8 {
		t.Fatalf("relayBatch = %d, %v", n, err)
	}
	got := f.pending(t)
	if len(got) != len(ids) {
		t.Fatalf("%d tasks queued, want %d", len(got), len(ids))
	}
	rows, err := f.pool.Query(ctx, `SELECT notification_id, created_at, payload FROM notifyd_outbox WHERE sent_at IS NOT NULL ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for rows.Next() {
		var nid uuid.UUID
		var created time.Time
		var payload []byte
		if err := rows.Scan(&nid, &created, &payload); err != nil {
			t.Fatal(err)
		}
		d := got[i]
		// The task is JSON, and encoding/json compacts a RawMessage
		// (Notify's tasks too): compare compacted.
		var compact bytes.Buffer
		json.Compact(&compact, payload)
		if d.ID.String() != ids[i] || nid != d.ID || d.Attempt != 1 || d.ReceiverID != f.active ||
			string(d.Payload) != compact.String() || !d.EnqueuedAt.Equal(created) {
			t.Errorf("task %d = %+v, want id %s payload %s enqueued_at %s", i, d, ids[i], payload, created)
		}
		i++
	}
	if i != len(ids) {
		t.Errorf("%d rows sent, want %d", i, len(ids))
	}

	dead := map[string]string{}
	rows, _ = f.pool.Query(ctx, `SELECT idempotency_key, last_error FROM notifyd_outbox WHERE dead_at IS NOT NULL AND sent_at IS NULL AND attempts = 1`)
	for rows.Next() {
		var k, e string
		rows.Scan(&k, &e)
		dead[k] = e
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for key, want := range map[string]string{"k4": "not active", "k5": "unknown receiver", "k7": "notification_id", "k8": "payload"} {
		if !strings.Contains(dead[key], want) {
			t.Errorf("row %s: last_error %q, want it dead with %q", key, dead[key], want)
		}
	}
	if len(dead) != 4 {
		t.Errorf("dead rows %v", dead)
	}
	st, err := f.relay.stats(ctx, DefaultOutboxTable)
	if err != nil || st.backlog != 0 || st.dead != 4 || st.oldest != 0 {
		t.Errorf("stats = %+v, %v", st, err)
	}

	// Nothing is left: the next round finds nothing (dead rows stay dead).
	if n, err := f.relay.relayBatch(ctx, DefaultOutboxTable); err != nil || n != 0 {
		t.Fatalf("third relayBatch = %d, %v", n, err)
	}

	// A relay that died before marking: the row is sent again. Its first
	// copy is a member of the round's batch task; a re-send of one row is
	// written alone, and internal/enqueue guards a lone task by its task id
	// only (BATCH_API.md), not by the members' markers: the copy may be
	// queued beside the batch, and the worker records the attempt once
	// (TestOutboxRelayKilledBetweenEnqueueAndMark: delivered once each).
	if _, err := f.pool.Exec(ctx, `UPDATE notifyd_outbox SET sent_at = NULL WHERE idempotency_key = 'k2'`); err != nil {
		t.Fatal(err)
	}
	if n, err := f.relay.relayBatch(ctx, DefaultOutboxTable); err != nil || n != 1 {
		t.Fatalf("re-send = %d, %v", n, err)
	}
	copies := map[string]int{}
	for _, d := range f.pending(t) {
		copies[d.ID.String()]++
	}
	for _, id := range ids {
		if copies[id] < 1 || (copies[id] > 1 && id != ids[1]) || copies[id] > 2 {
			t.Errorf("after re-sending k2: notification %s queued %d times", id, copies[id])
		}
	}
	if len(copies) != len(ids) {
		t.Errorf("%d notifications queued after a re-send, want still %d", len(copies), len(ids))
	}
	if n := countRows(t, f.pool, "sent_at IS NOT NULL"); n != len(ids) {
		t.Errorf("%d rows sent, want %d", n, len(ids))
	}
}

func TestRelayWakesOnCommitAndIgnoresRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A poll interval far beyond the test's patience: only the
	// notification from the commit can wake the relay in time.
	f := newRelayFixture(t, true, WithRelayPollInterval(time.Hour))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.relay.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testenv.WaitFor(t, 10*time.Second, "relay LISTENing", func() bool {
		var n int
		err := f.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&n)
		return err == nil && n == 1
	})

	// The producer's business write and the notification, rolled back.
	tx, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rolledBack, err := f.client.EnqueueTx(ctx, tx, validNotification(f.active, "cancelled-order"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	tx, err = f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := f.client.EnqueueTx(ctx, tx, validNotification(f.active, "paid-order"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the committed row relayed", func() bool { return countRows(t, f.pool, "sent_at IS NOT NULL") == 1 })
	got := f.pending(t)
	if len(got) != 1 || got[0].ID.String() != committed || got[0].ID.String() == rolledBack {
		t.Errorf("queued %v, want only %s", got, committed)
	}
	if n := countRows(t, f.pool, "true"); n != 1 {
		t.Errorf("%d outbox rows, want 1", n)
	}
}

func TestRelayPrunesOnlyOldConfirmedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := producerDB(t)
	r := NewRelay(pool, offlineClient(t), WithRelayRetention(24*time.Hour))
	// More old rows than one prune batch, to cross a batch boundary.
	if _, err := pool.Exec(ctx, `INSERT INTO notifyd_outbox (notification_id, receiver_id, event_type, idempotency_key, payload, sent_at, confirmed_at, created_at)
		SELECT gen_random_uuid(), gen_random_uuid(), 'e', 'old-' || i, '{}', now() - interval '2 days', now() - interval '2 days', now() - interval '2 days'
		FROM generate_series(1, $1) i`, pruneBatch+500); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO notifyd_outbox (notification_id, receiver_id, event_type, idempotency_key, payload, sent_at, confirmed_at, dead_at, created_at) VALUES
		(gen_random_uuid(), gen_random_uuid(), 'e', 'recent', '{}', now() - interval '1 hour', now() - interval '1 hour', NULL, now() - interval '1 hour'),
		(gen_random_uuid(), gen_random_uuid(), 'e', 'unconfirmed', '{}', now() - interval '3 days', NULL, NULL, now() - interval '3 days'),
		(gen_random_uuid(), gen_random_uuid(), 'e', 'unsent', '{}', NULL, NULL, NULL, now() - interval '3 days'),
		(gen_random_uuid(), gen_random_uuid(), 'e', 'dead', '{}', NULL, NULL, now() - interval '3 days', now() - interval '3 days')`); err != nil {
		t.Fatal(err)
	}
	n, err := r.prune(ctx, DefaultOutboxTable)
	if err != nil || n != pruneBatch+500 {
		t.Fatalf("prune = %d, %v", n, err)
	}
	var left []string
	rows, _ := pool.Query(ctx, `SELECT idempotency_key FROM notifyd_outbox ORDER BY idempotency_key`)
	for rows.Next() {
		var k string
		rows.Scan(&k)
		left = append(left, k)
	}
	if got := strings.Join(left, ","); got != "dead,recent,unconfirmed,unsent" {
		t.Errorf("rows left: %s", got)
	}
	st, err := r.stats(ctx, DefaultOutboxTable)
	if err != nil || st.backlog != 1 || st.dead != 1 || st.unconfirmed != 1 || st.oldest < 71*time.Hour || st.oldest > 73*time.Hour {
		t.Errorf("stats = %+v, %v", st, err)
	}
}

func TestRelayRefusesToStartMisconfigured(t *testing.T) {
	t.Parallel()
	_, pool := testenv.Pool(t)
	confirm := WithRelayConfirmer(DatabaseConfirmer(pool))
	if err := NewRelay(pool, offlineClient(t), confirm).Run(context.Background()); err == nil || !strings.Contains(err.Error(), DefaultOutboxTable) {
		t.Errorf("Run without the table = %v", err)
	}
	// A table of the previous version, not upgraded: the relay could not
	// tell sent rows from confirmed ones.
	if _, err := pool.Exec(context.Background(), `CREATE TABLE notifyd_outbox (id bigserial PRIMARY KEY, sent_at timestamptz)`); err != nil {
		t.Fatal(err)
	}
	if err := NewRelay(pool, offlineClient(t), confirm).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "confirmed_at") {
		t.Errorf("Run on a table not upgraded = %v", err)
	}
	if err := NewRelay(pool, offlineClient(t)).Run(context.Background()); !errors.Is(err, ErrNoConfirmer) {
		t.Errorf("Run without a Confirmer = %v, want ErrNoConfirmer", err)
	}
}
