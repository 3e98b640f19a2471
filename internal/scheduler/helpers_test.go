package scheduler

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/testenv"
)

// env is one test's world: its own database and Redis DB index.
type env struct {
	t       *testing.T
	dsn     string
	pool    *pgxpool.Pool
	store   *store.Store
	rdb     *redis.Client
	queue   *asynq.Client
	inspect *asynq.Inspector
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dsn, pool := testenv.Pool(t)
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { rdb.Close() })
	return &env{t: t, dsn: dsn, pool: pool, store: store.New(pool), rdb: rdb,
		queue: asynq.NewClientFromRedisClient(rdb), inspect: asynq.NewInspectorFromRedisClient(rdb)}
}

func quietLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// scheduler builds a scheduler on the test's store.
func (e *env) scheduler(cfg Config) *Scheduler {
	e.t.Helper()
	return e.schedulerOn(e.store, cfg)
}

// replica builds a scheduler with a connection pool of its own, as another
// replica of notifyd has.
func (e *env) replica(cfg Config) *Scheduler {
	e.t.Helper()
	st, err := store.Open(context.Background(), e.dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(st.Close)
	return e.schedulerOn(st, cfg)
}

func (e *env) schedulerOn(st *store.Store, cfg Config) *Scheduler {
	e.t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger(e.t)
	}
	if cfg.Redis == nil {
		cfg.Redis = e.rdb // as notifyd runs it: the re-drive queues in batches
	}
	s, err := New(st, e.queue, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) receiver() *store.Receiver {
	e.t.Helper()
	r := &store.Receiver{ID: uuid.New(), Name: "shop-" + uuid.NewString()[:8], CallbackURL: "https://example.com/cb", SigningSecret: "whsec_x"}
	if err := e.store.CreateReceiver(context.Background(), r, store.HashAPIKey(uuid.NewString())); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// notification inserts a pending notification (max 3 attempts) and then
// applies set, an SQL SET list over the row (with $2.. bound to args), to
// put it in the state a test needs.
func (e *env) notification(r *store.Receiver, set string, args ...any) *store.Notification {
	e.t.Helper()
	ctx := context.Background()
	key := uuid.NewString()
	n, _, err := e.store.InsertNotification(ctx, store.NewNotification{
		ID: tasks.NotificationID(r.ID, key), ReceiverID: r.ID, EventType: "trade.paid", IdempotencyKey: key,
		CallbackURL: "https://example.com/override", Payload: []byte(`{"amount":1}`), MaxAttempts: 3,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if set != "" {
		if _, err := e.pool.Exec(ctx, `UPDATE notifications SET `+set+` WHERE id = $1`, append([]any{n.ID}, args...)...); err != nil {
			e.t.Fatalf("update %s: %v", set, err)
		}
	}
	n, err = e.store.GetNotification(ctx, n.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// attempts adds automatic attempts 1..k to n, with durations of ms each.
func (e *env) attempts(n *store.Notification, ms ...int) {
	e.t.Helper()
	for i, d := range ms {
		_, err := e.pool.Exec(context.Background(), `
			INSERT INTO delivery_attempts (notification_id, attempt_no, started_at, duration_ms, status_code, outcome, notification_created_at)
			VALUES ($1, $2, now(), $3, 500, 'failure', (SELECT created_at FROM notification_keys WHERE id = $1))`, n.ID, i+1, d)
		if err != nil {
			e.t.Fatal(err)
		}
	}
}

// inspectable makes the Inspector see every notifyd queue. An Asynq client
// registers a queue in Redis (asynq:queues) only on its first enqueue to it
// and remembers having done so, so after a flush its queues hold tasks that
// workers process but that the Inspector, which checks the registry, reports
// as "queue not found".
func (e *env) inspectable() {
	e.t.Helper()
	if err := e.rdb.SAdd(context.Background(), "asynq:queues", tasks.QueueFirst, tasks.QueueRetry).Err(); err != nil {
		e.t.Fatal(err)
	}
}

// taskFor returns the task for n's next attempt as Asynq holds it (its own
// task, or a member of a batch task), or nil.
func (e *env) taskFor(n *store.Notification) *tasks.Deliver {
	e.t.Helper()
	want := tasks.Deliver{ID: n.ID, Attempt: n.Attempts + 1}
	for _, d := range e.members() {
		if d.TaskID() == want.TaskID() {
			return d
		}
	}
	return nil
}

// queued is the number of notifications' attempts in every notifyd queue,
// counting each member of a batch task.
func (e *env) queued() int {
	e.t.Helper()
	return len(e.members())
}

// members lists the attempts every task in notifyd's queues carries: a
// task of its own, or each member of a batch task.
func (e *env) members() []*tasks.Deliver {
	e.t.Helper()
	e.inspectable()
	var out []*tasks.Deliver
	for _, q := range []string{tasks.QueueFirst, tasks.QueueRetry} {
		for _, list := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){e.inspect.ListPendingTasks, e.inspect.ListScheduledTasks} {
			infos, err := list(q, asynq.PageSize(10000))
			if err != nil {
				e.t.Fatalf("queue %s: %v", q, err)
			}
			for _, info := range infos {
				var ds []*tasks.Deliver
				if info.Type == tasks.TypeBatch {
					ds, err = tasks.DecodeBatch(info.Payload)
				} else {
					var d *tasks.Deliver
					d, err = tasks.Decode(info.Payload)
					ds = []*tasks.Deliver{d}
				}
				if err != nil {
					e.t.Fatalf("task %s: %v", info.ID, err)
				}
				out = append(out, ds...)
			}
		}
	}
	return out
}

func (e *env) status(n *store.Notification) *store.Notification {
	e.t.Helper()
	got, err := e.store.GetNotification(context.Background(), n.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

func ago(d time.Duration) string {
	return fmt.Sprintf("now() - interval '%d milliseconds'", d.Milliseconds())
}
