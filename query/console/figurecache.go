package console

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// figuresTTL is how old the operator pages' aggregate figures (the
// overview's and the receivers' health) may be. Counting a day of
// notifications takes long on a large table (seconds at 10 M rows), so the
// figures are computed at most this often, in the background once there
// are some, and every page load reads them.
const figuresTTL = 15 * time.Second

// refreshTimeout bounds one background computation.
const refreshTimeout = time.Minute

// figureCache holds the last figures of one kind (T) and when they were
// computed, and refreshes them: a page past the TTL gets the stale figures
// at once and starts a refresh in the background, so no page load but the
// first waits for an aggregate over the table. One computation runs at a
// time, detached from the pages that wait for it: operators opening the
// console together after a start share the first one, and one giving up
// (closing the tab) does not waste it.
type figureCache[T any] struct {
	name    string
	compute func(ctx context.Context) (T, error)

	mu      sync.Mutex
	data    T
	at      time.Time     // when data was computed; zero: not yet
	err     error         // of the last computation that failed
	running chan struct{} // closed when the computation running ends; nil: none
}

func newFigureCache[T any](name string, compute func(ctx context.Context) (T, error)) *figureCache[T] {
	return &figureCache[T]{name: name, compute: compute}
}

// get returns the figures and when they were computed: fresh ones, or stale
// ones while a refresh runs; before the first figures it waits for them.
func (fc *figureCache[T]) get(ctx context.Context, now time.Time, log *slog.Logger) (T, time.Time, error) {
	fc.mu.Lock()
	if !fc.at.IsZero() {
		d, at := fc.data, fc.at
		if now.Sub(at) >= figuresTTL {
			fc.start(now, log)
		}
		fc.mu.Unlock()
		return d, at, nil
	}
	done := fc.start(now, log)
	fc.mu.Unlock()
	var zero T
	select {
	case <-done:
	case <-ctx.Done():
		return zero, now, ctx.Err()
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.at.IsZero() {
		return zero, now, fc.err
	}
	return fc.data, fc.at, nil
}

// start begins a computation of the figures as of now unless one runs, and
// returns the channel closed when the running one ends. fc.mu is held.
func (fc *figureCache[T]) start(now time.Time, log *slog.Logger) chan struct{} {
	if fc.running != nil {
		return fc.running
	}
	done := make(chan struct{})
	fc.running = done
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		d, err := fc.compute(ctx)
		fc.mu.Lock()
		defer fc.mu.Unlock()
		fc.running = nil
		if err != nil {
			fc.err = err
			if !fc.at.IsZero() {
				// Pages go on with the stale figures; nobody else hears of it.
				log.Warn("console: "+fc.name+" refresh", "err", err)
			}
			return
		}
		fc.data, fc.at, fc.err = d, now, nil
	}()
	return done
}
