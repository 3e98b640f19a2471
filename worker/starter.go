package worker

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/batcher"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// stateStore is the part of the store the starter needs.
type stateStore interface {
	DeliveryStates(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]store.DeliveryState, error)
}

// starter groups the state look-ups of concurrent handlers into one
// statement (a batcher, as the recorder's attempt writes): one statement per
// delivery was a large share of Postgres's work.
type starter struct {
	s       stateStore
	batches *batcher.Batcher[*beginRequest, struct{}]
}

type beginRequest struct {
	id    uuid.UUID
	st    store.DeliveryState
	found bool
	err   error
	done  chan struct{}
}

func newStarter(s stateStore, maxBatch int) *starter {
	st := &starter{s: s}
	st.batches = batcher.New[*beginRequest, struct{}](maxBatch, time.Millisecond, st.flush, nil)
	return st
}

func (s *starter) start() { s.batches.Start() }

// begin returns the notification's state, and whether it is on record.
func (s *starter) begin(ctx context.Context, id uuid.UUID) (st store.DeliveryState, found bool, err error) {
	r := &beginRequest{id: id, done: make(chan struct{})}
	switch err := s.batches.Add(ctx, r); {
	case errors.Is(err, batcher.ErrClosed):
		// A handler still running at shutdown looks its state up alone.
		s.flush([]*beginRequest{r})
		return r.st, r.found, r.err
	case err != nil:
		return st, false, err
	}
	select {
	case <-r.done:
		return r.st, r.found, r.err
	case <-ctx.Done():
		return st, false, ctx.Err()
	}
}

// close flushes the queued look-ups and stops; each flush's statement is
// bounded by its own timeout, so the deadline is only a backstop.
func (s *starter) close() { s.batches.Close(time.Minute) }

func (s *starter) flush(batch []*beginRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	metrics.BeginBatch.Observe(float64(len(batch)))
	ids := make([]uuid.UUID, len(batch))
	for i, r := range batch {
		ids[i] = r.id
	}
	states, err := s.s.DeliveryStates(ctx, ids)
	for _, r := range batch {
		r.st, r.found = states[r.id]
		r.err = err
		close(r.done)
	}
}
