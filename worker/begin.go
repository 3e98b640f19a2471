package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// beginStore is the part of the store the starter needs.
type beginStore interface {
	BeginDelivery(ctx context.Context, n *store.NewNotification) (store.DeliveryState, error)
	BeginDeliveries(ctx context.Context, batch []*store.NewNotification) (map[uuid.UUID]store.DeliveryState, error)
}

// starter groups the BeginDelivery calls of concurrent handlers into one
// statement, the way the recorder groups attempt writes: one statement per
// notification was the largest share of Postgres's work per delivery. Like
// the recorder it never waits to fill a batch.
type starter struct {
	s        beginStore
	in       chan *beginRequest
	maxBatch int
	flushers int
	log      *slog.Logger

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

type beginRequest struct {
	n    *store.NewNotification
	st   store.DeliveryState
	err  error
	done chan struct{}
}

func newStarter(s beginStore, log *slog.Logger, flushers, maxBatch int) *starter {
	return &starter{s: s, in: make(chan *beginRequest, maxBatch*flushers), maxBatch: maxBatch, flushers: flushers, log: log, stop: make(chan struct{})}
}

func (s *starter) start() {
	for range s.flushers {
		s.wg.Add(1)
		go s.loop()
	}
}

// begin records n if it is new and returns its state.
func (s *starter) begin(ctx context.Context, n *store.NewNotification) (store.DeliveryState, error) {
	r := &beginRequest{n: n, done: make(chan struct{})}
	select {
	case s.in <- r:
	case <-s.stop:
		return s.s.BeginDelivery(ctx, n)
	case <-ctx.Done():
		return store.DeliveryState{}, ctx.Err()
	}
	select {
	case <-r.done:
		return r.st, r.err
	case <-ctx.Done():
		return store.DeliveryState{}, ctx.Err()
	}
}

func (s *starter) close() {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
	})
}

func (s *starter) loop() {
	defer s.wg.Done()
	batch := make([]*beginRequest, 0, s.maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-s.in:
			batch = append(batch, r)
		case <-s.stop:
			for {
				select {
				case r := <-s.in:
					s.flush([]*beginRequest{r})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.in:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.flush(batch)
	}
}

func (s *starter) flush(batch []*beginRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	finish := func(r *beginRequest, st store.DeliveryState, err error) {
		r.st, r.err = st, err
		close(r.done)
	}
	metrics.BeginBatch.Observe(float64(len(batch)))
	if len(batch) == 1 {
		st, err := s.s.BeginDelivery(ctx, batch[0].n)
		finish(batch[0], st, err)
		return
	}
	ns := make([]*store.NewNotification, len(batch))
	for i, r := range batch {
		ns[i] = r.n
	}
	states, err := s.s.BeginDeliveries(ctx, ns)
	if err != nil {
		// One bad row (an unknown receiver) must not fail its neighbours:
		// fall back to one statement each, which also reports per row.
		s.log.Debug("batched begin failed; starting one by one", "rows", len(batch), "err", err)
		for _, r := range batch {
			st, err := s.s.BeginDelivery(ctx, r.n)
			finish(r, st, err)
		}
		return
	}
	seen := make(map[uuid.UUID]bool, len(batch))
	for _, r := range batch {
		st, ok := states[r.n.ID]
		if !ok {
			var err error
			st, err = s.s.BeginDelivery(ctx, r.n)
			finish(r, st, err)
			continue
		}
		if seen[r.n.ID] {
			st.Inserted = false // the same notification twice in one batch
		}
		seen[r.n.ID] = true
		finish(r, st, nil)
	}
}
