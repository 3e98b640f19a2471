package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

// TestAcknowledgeRacingTheFirstOffer: a pull receiver acknowledges
// notifications (which the stream sent straight from Postgres) while a
// worker records their first offers. Neither fails (no deadlock), each
// ends delivered with exactly one attempt 1 on record, whoever won.
func TestAcknowledgeRacingTheFirstOffer(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	r := newReceiver(t, s)
	const n = 40
	ids := make([]uuid.UUID, n)
	for i := range ids {
		nn, _, err := s.InsertNotification(ctx, *newNotification(r, fmt.Sprintf("race-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = nn.ID
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, id := range ids {
		wg.Add(2)
		go func() {
			defer wg.Done()
			errs <- s.RecordAttempts(ctx, []store.AttemptRecord{{
				Attempt:   store.Attempt{NotificationID: id, AttemptNo: 1, StartedAt: time.Now(), Outcome: store.OutcomeOffered},
				NewStatus: store.StatusPending, NextAttemptAt: time.Now().Add(time.Hour),
			}})
		}()
		go func() {
			defer wg.Done()
			st, _, err := s.Acknowledge(ctx, r.ID, []uuid.UUID{id})
			if err == nil && st[id] != store.StatusDelivered {
				err = fmt.Errorf("ack %s: status %q", id, st[id])
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, id := range ids {
		nn, err := s.GetNotification(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		as, err := s.ListAttempts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if nn.Status != store.StatusDelivered || nn.Attempts != 1 || nn.NextAttemptAt != nil || len(as) != 1 ||
			as[0].AttemptNo != 1 || as[0].Outcome != store.OutcomeOffered {
			t.Errorf("notification %s: %+v, attempts %+v", id, nn, as)
		}
	}
	// Another receiver's ids are not its to acknowledge, nor to see.
	other := newReceiver(t, s)
	st, changed, err := s.Acknowledge(ctx, other.ID, ids[:1])
	if err != nil || len(st) != 0 || changed != 0 {
		t.Errorf("another receiver's ack: %v, %d, %v", st, changed, err)
	}
}
