package notifier

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/enqueue"
	"github.com/notifyd/notifyd/internal/tasks"
)

// failingTasks passes the first ok task writes to Redis and fails the rest,
// as a Redis that goes away in the middle of a round would.
type failingTasks struct {
	tasks.Enqueuer
	ok    int32
	calls atomic.Int32
}

var errRedisGone = errors.New("redis went away")

func (f *failingTasks) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if f.calls.Add(1) > f.ok {
		return nil, errRedisGone
	}
	return f.Enqueuer.EnqueueContext(ctx, t, opts...)
}

// TestRelayRoundFailingHalfWay: a round of 250 rows is written as three
// batch tasks (100 members at most each); the second write fails. Every
// row must end either sent with its notification in Redis, or unsent with
// the failure counted and recorded, and the next round sends exactly the
// unsent ones: nothing is lost, nothing marked sent that Redis lacks.
func TestRelayRoundFailingHalfWay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRelayFixture(t, true, WithRelayBatchSize(250))
	want := map[string]bool{}
	for i := range 250 {
		want[f.enqueue(t, validNotification(f.active, fmt.Sprintf("k%03d", i)))] = true
	}
	// The batches go through the client's producer; its task writes are
	// the ones that fail (the markers are written, and then removed).
	real := asynq.NewClientFromRedisClient(f.rdb)
	t.Cleanup(func() { real.Close() })
	f.client.producer = enqueue.New(f.rdb, &failingTasks{Enqueuer: real, ok: 1}, nil)

	n, err := f.relay.relayBatch(ctx, DefaultOutboxTable)
	if n != 250 || !errors.Is(err, errRedisGone) {
		t.Fatalf("relayBatch = %d, %v; want 250 rows and the write's error", n, err)
	}
	queued := map[string]int{}
	for _, d := range f.pending(t) {
		queued[d.ID.String()]++
	}
	sent := f.sentIDs(t, "sent_at IS NOT NULL")
	failed := f.sentIDs(t, "sent_at IS NULL AND dead_at IS NULL AND attempts = 1 AND last_error LIKE '%redis went away%'")
	if len(sent) == 0 || len(failed) == 0 || len(sent)+len(failed) != 250 {
		t.Fatalf("after the half-failed round: %d rows sent, %d failed and kept for a retry; want both, 250 in all", len(sent), len(failed))
	}
	for _, id := range sent {
		if queued[id] != 1 {
			t.Errorf("row of %s marked sent, but Redis holds it %d times", id, queued[id])
		}
	}
	if len(queued) != len(sent) {
		t.Errorf("Redis holds %d notifications, %d rows are marked sent", len(queued), len(sent))
	}

	// Redis is back: the next round sends what the first could not.
	f.client.producer = enqueue.New(f.rdb, real, nil)
	if n, err := f.relay.relayBatch(ctx, DefaultOutboxTable); n != len(failed) || err != nil {
		t.Fatalf("second relayBatch = %d, %v; want the %d failed rows", n, err, len(failed))
	}
	queued = map[string]int{}
	for _, d := range f.pending(t) {
		queued[d.ID.String()]++
	}
	for id := range want {
		if queued[id] != 1 {
			t.Errorf("notification %s queued %d times after the retry, want once", id, queued[id])
		}
	}
	if n := countRows(t, f.pool, "sent_at IS NOT NULL"); n != 250 {
		t.Errorf("%d rows sent after the retry, want 250", n)
	}
}

// sentIDs lists the notification ids of the outbox rows matching where.
func (f *relayFixture) sentIDs(t *testing.T, where string) []string {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT notification_id::text FROM notifyd_outbox WHERE `+where)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
