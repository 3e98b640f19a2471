package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/tasks"
)

// Concurrent Notify calls share tasks (no worker runs here, so the tasks
// stay in Redis to be counted); each call gets its own id, and a lone call
// is an ordinary task of its own.
func TestNotifyLingerCombinesConcurrentCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRelayFixture(t, true)
	if _, err := f.client.Notify(ctx, validNotification(f.active, "lone")); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(f.rdb)
	if infos, _ := insp.ListPendingTasks(tasks.QueueFirst); len(infos) != 1 || infos[0].Type != tasks.TypeDeliver {
		t.Fatalf("a lone Notify made %d tasks (%v)", len(infos), infos)
	}
	const n = 300
	var wg sync.WaitGroup
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			id, err := f.client.Notify(ctx, validNotification(f.active, "c-"+strconv.Itoa(i)))
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	queued := map[string]bool{}
	for _, d := range f.pending(t) {
		queued[d.ID.String()] = true
	}
	for i, id := range ids {
		if !queued[id] {
			t.Errorf("call %d: %s not queued", i, id)
		}
	}
	infos, err := insp.ListPendingTasks(tasks.QueueFirst, asynq.PageSize(1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) > n/4 {
		t.Errorf("%d concurrent calls made %d tasks", n, len(infos))
	}
	t.Logf("%d concurrent calls in %d tasks", n+1, len(infos))
}

// NotifyMany: per-item results in order, typed errors naming the item.
func TestNotifyManyResults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newRelayFixture(t, true)
	if _, err := f.client.Notify(ctx, validNotification(f.active, "earlier")); err != nil {
		t.Fatal(err)
	}
	other := validNotification(f.active, "dup")
	other.Payload = json.RawMessage(`{"other":true}`)
	bad := validNotification(f.active, "bad")
	bad.CallbackURL = "ftp://example.com"
	ns := []Notification{
		validNotification(f.active, "a"),
		validNotification(f.active, "earlier"), // queued before: success, not queued again
		validNotification(f.active, "dup"),
		other, // same key as item 2, other content
		validNotification(uuid.New(), "x"),
		validNotification(f.inactive, "y"),
		bad,
		{ReceiverID: "not-a-uuid"},
	}
	res, err := f.client.NotifyMany(ctx, ns)
	if err == nil {
		t.Fatal("NotifyMany = nil with bad items")
	}
	check := func(i int, ok bool, what string) {
		t.Helper()
		if !ok {
			t.Errorf("item %d: %s; result %+v", i, what, res[i])
		}
		var ie *ItemError
		if res[i].Err != nil && (!errors.As(res[i].Err, &ie) || ie.Index != i) {
			t.Errorf("item %d: error %v does not name its index", i, res[i].Err)
		}
	}
	check(0, res[0].Err == nil && res[0].Queued && res[0].ID != "", "want queued")
	check(1, res[1].Err == nil && !res[1].Queued && res[1].ID != "", "want already queued")
	check(2, res[2].Err == nil && res[2].Queued, "want queued")
	check(3, errors.Is(res[3].Err, ErrIdempotencyConflict) && res[3].ID == res[2].ID, "want a conflict with item 2")
	check(4, errors.Is(res[4].Err, ErrUnknownReceiver), "want ErrUnknownReceiver")
	check(5, errors.Is(res[5].Err, ErrReceiverInactive), "want ErrReceiverInactive")
	var ve *ValidationError
	check(6, errors.As(res[6].Err, &ve) && ve.Field == "callback_url", "want a validation error for callback_url")
	check(7, errors.As(res[7].Err, &ve) && ve.Field == "receiver_id", "want a validation error for receiver_id")
	for _, want := range []error{ErrIdempotencyConflict, ErrUnknownReceiver, ErrReceiverInactive, ErrInvalidNotification} {
		if !errors.Is(err, want) {
			t.Errorf("NotifyMany's error %v does not match %v", err, want)
		}
	}
	if p := f.pending(t); len(p) != 3 {
		t.Errorf("%d notifications queued, want 3 (earlier, a, dup)", len(p))
	}
}
