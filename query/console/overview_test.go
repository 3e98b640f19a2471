package console

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// TestOverviewFiguresRefresh: within the TTL a page reads the figures
// already computed; past it, the stale figures are served once while a
// background refresh computes new ones, which the next page reads.
func TestOverviewFiguresRefresh(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := New(Config{Store: st, AdminToken: "t", Now: clock})

	first, err := c.overviewFigures(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Day["pending"] != 0 {
		t.Fatalf("empty database: %v", first.Day)
	}
	r := &store.Receiver{ID: uuid.New(), Name: "r", CallbackURL: "http://127.0.0.1:1/", SigningSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	if err := st.CreateReceiver(ctx, r, []byte(uuid.NewString())); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.InsertNotification(ctx, store.NewNotification{ID: uuid.New(), ReceiverID: r.ID, EventType: "e",
		IdempotencyKey: "k", Payload: []byte(`{}`), MaxAttempts: 1}); err != nil {
		t.Fatal(err)
	}
	advance(figuresTTL - time.Second)
	if d, _ := c.overviewFigures(ctx); d != first {
		t.Fatal("recomputed within the TTL")
	}
	advance(2 * time.Second)
	if d, _ := c.overviewFigures(ctx); d != first {
		t.Fatal("a stale page waited for the refresh instead of reading the old figures")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, _ := c.overviewFigures(ctx)
		if d != first && d.Day["pending"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refreshed figures: %v", d.Day)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
