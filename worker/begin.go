package worker

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// stateStore is the part of the store the starter needs.
type stateStore interface {
	DeliveryStates(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]store.DeliveryState, error)
}

// starter groups the state look-ups of concurrent handlers into one
// statement, the way the recorder groups attempt writes (with the same
// batchLinger): one statement per delivery was a large share of Postgres's
// work.
type starter struct {
	s        stateStore
	in       chan *beginRequest
	maxBatch int
	linger   time.Duration

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

type beginRequest struct {
	id    uuid.UUID
	st    store.DeliveryState
	found bool
	err   error
	done  chan struct{}
}

func newStarter(s stateStore, maxBatch int) *starter {
	return &starter{s: s, in: make(chan *beginRequest, maxBatch), maxBatch: maxBatch, linger: time.Millisecond, stop: make(chan struct{})}
}

func (s *starter) start() {
	s.wg.Add(1)
	go s.loop()
}

// begin returns the notification's state, and whether it is on record.
func (s *starter) begin(ctx context.Context, id uuid.UUID) (st store.DeliveryState, found bool, err error) {
	r := &beginRequest{id: id, done: make(chan struct{})}
	select {
	case s.in <- r:
	case <-s.stop:
		s.flush([]*beginRequest{r})
		return r.st, r.found, r.err
	case <-ctx.Done():
		return st, false, ctx.Err()
	}
	select {
	case <-r.done:
		return r.st, r.found, r.err
	case <-ctx.Done():
		return st, false, ctx.Err()
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
	wait := batchLinger{linger: s.linger}
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
		wait.start()
	fill:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.in:
				batch = append(batch, r)
			default:
				if !wait.again() {
					break fill
				}
			}
		}
		wait.sent(len(batch))
		s.flush(batch)
	}
}

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
