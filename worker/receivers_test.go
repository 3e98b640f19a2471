package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
)

// countingGetter serves receivers from a map and counts the look-ups.
type countingGetter struct {
	byID  map[uuid.UUID]*store.Receiver
	loads atomic.Int32
	gate  chan struct{} // when set, look-ups wait for it
}

func (g *countingGetter) GetReceiver(_ context.Context, id uuid.UUID) (*store.Receiver, error) {
	g.loads.Add(1)
	if g.gate != nil {
		<-g.gate
	}
	r, ok := g.byID[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return r, nil
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A failing or disabled receiver is read again after unhealthyTTL: a
// disable (or an enable) reaches the workers within it.
func TestReceiverCacheUnhealthy(t *testing.T) {
	t.Parallel()
	for _, status := range []string{store.ReceiverFailing, store.ReceiverDisabled} {
		r := &store.Receiver{ID: uuid.New(), SigningSecret: newSecret(t), Health: store.Health{Status: status}}
		g := &countingGetter{byID: map[uuid.UUID]*store.Receiver{r.ID: r}}
		c := newReceiverCache(g, retry.Default())
		now := time.Now()
		c.setClock(func() time.Time { return now })
		for _, after := range []time.Duration{0, unhealthyTTL / 2, unhealthyTTL + time.Millisecond} {
			now = now.Add(after)
			if _, err := c.get(context.Background(), r.ID); err != nil {
				t.Fatal(err)
			}
		}
		if n := g.loads.Load(); n != 2 {
			t.Errorf("%s receiver: %d look-ups over %s, want 2", status, n, unhealthyTTL*3/2)
		}
	}
}

// A receiver is loaded once for receiverTTL, or until its previous secret
// stops signing if that comes first; an unknown one is not cached.
func TestReceiverCacheExpiry(t *testing.T) {
	t.Parallel()
	start := time.Now()
	until := start.Add(receiverTTL / 2)
	plain := &store.Receiver{ID: uuid.New(), SigningSecret: newSecret(t)}
	rotating := &store.Receiver{ID: uuid.New(), SigningSecret: newSecret(t),
		PreviousSecret: newSecret(t), PreviousSecretUntil: &until}
	tests := []struct {
		name      string
		id        uuid.UUID
		after     time.Duration // when the second look-up happens
		wantLoads int32         // look-ups by both gets
		wantErr   bool
	}{
		{name: "fresh", id: plain.ID, after: receiverTTL - time.Millisecond, wantLoads: 1},
		{name: "stale", id: plain.ID, after: receiverTTL, wantLoads: 2},
		{name: "previous secret valid", id: rotating.ID, after: receiverTTL/2 - time.Millisecond, wantLoads: 1},
		{name: "previous secret ended", id: rotating.ID, after: receiverTTL / 2, wantLoads: 2},
		{name: "unknown", id: uuid.New(), wantLoads: 2, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := &countingGetter{byID: map[uuid.UUID]*store.Receiver{plain.ID: plain, rotating.ID: rotating}}
			c := newReceiverCache(g, retry.Default())
			now := start
			c.setClock(func() time.Time { return now })
			for i := range 2 {
				if i == 1 {
					now = start.Add(tc.after)
				}
				if _, err := c.get(t.Context(), tc.id); (err != nil) != tc.wantErr {
					t.Fatalf("get %d: err = %v, want error %v", i, err, tc.wantErr)
				}
			}
			if n := g.loads.Load(); n != tc.wantLoads {
				t.Errorf("%d look-ups, want %d", n, tc.wantLoads)
			}
		})
	}
}

// Deliveries that miss together share one look-up.
func TestReceiverCacheLoadsOnce(t *testing.T) {
	t.Parallel()
	r := &store.Receiver{ID: uuid.New(), SigningSecret: newSecret(t)}
	g := &countingGetter{byID: map[uuid.UUID]*store.Receiver{r.ID: r}, gate: make(chan struct{})}
	c := newReceiverCache(g, retry.Default())
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := c.get(t.Context(), r.ID); err != nil {
				t.Error(err)
			}
		})
	}
	for g.loads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others reach the shared look-up
	close(g.gate)
	wg.Wait()
	if n := g.loads.Load(); n != 1 {
		t.Errorf("%d look-ups for 10 concurrent misses, want 1", n)
	}
}
