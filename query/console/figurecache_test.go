package console

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFigureCacheSharesTheFirstComputation: a page that gives up before
// the first figures does not cancel their computation; pages asking
// meanwhile wait for that one computation and read its figures.
func TestFigureCacheSharesTheFirstComputation(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	results := make(chan error)
	fc := newFigureCache("test", func(ctx context.Context) (int, error) {
		n := calls.Add(1)
		if err := <-results; err != nil {
			return 0, err
		}
		return int(n), nil
	})
	now := time.Now()
	log := slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := fc.get(ctx, now, log); !errors.Is(err, context.Canceled) {
		t.Fatalf("a page that gave up: %v", err)
	}
	var wg sync.WaitGroup
	got := make([]int, 3)
	for i := range got {
		wg.Go(func() {
			v, at, err := fc.get(context.Background(), now, log)
			if err != nil || !at.Equal(now) {
				t.Errorf("page %d: %v as of %v", i, err, at)
			}
			got[i] = v
		})
	}
	// Give the pages time to ask while the computation runs (were they
	// late, they would read its figures just the same).
	time.Sleep(100 * time.Millisecond)
	results <- nil
	wg.Wait()
	if calls.Load() != 1 || got[0] != 1 || got[1] != 1 || got[2] != 1 {
		t.Errorf("%d computations, pages read %v; want one computation for all", calls.Load(), got)
	}
}

// TestFigureCacheFirstFailure: when the first computation fails the page
// gets its error, and the next page computes again.
func TestFigureCacheFirstFailure(t *testing.T) {
	t.Parallel()
	results := make(chan error, 1)
	var calls atomic.Int32
	fc := newFigureCache("test", func(ctx context.Context) (int, error) {
		n := calls.Add(1)
		if err := <-results; err != nil {
			return 0, err
		}
		return int(n), nil
	})
	log := slog.New(slog.DiscardHandler)
	results <- errors.New("database down")
	if _, _, err := fc.get(context.Background(), time.Now(), log); err == nil || err.Error() != "database down" {
		t.Fatalf("first page: %v, want the computation's error", err)
	}
	results <- nil
	if v, _, err := fc.get(context.Background(), time.Now(), log); err != nil || v != 2 {
		t.Fatalf("next page: %d, %v; want the second computation's figures", v, err)
	}
}
