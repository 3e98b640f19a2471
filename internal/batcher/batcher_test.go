package batcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// A batch waits for company only when the one before it had some.
func TestBatchLinger(t *testing.T) {
	t.Parallel()
	var w batchLinger
	steps := []struct {
		prevRows  int // size of the batch sent before this one; 0: none yet
		wantAgain bool
	}{
		{0, false}, // idle start: send at once
		{1, false}, // alone last time
		{5, true},  // under load: wait once
		{2, true},
		{1, false},
	}
	for i, st := range steps {
		if st.prevRows > 0 {
			w.sent(st.prevRows)
		}
		w.start()
		if got := w.again(); got != st.wantAgain {
			t.Fatalf("step %d: again = %v, want %v", i, got, st.wantAgain)
		}
		if w.again() {
			t.Fatalf("step %d: waited twice for one batch", i)
		}
	}
}

// batchItem is a test item: n names it in the batches, key is its batch key.
type batchItem struct {
	n   int
	key string
}

// batchLog records the batches a batcher flushed, as item numbers.
type batchLog struct {
	mu      sync.Mutex
	batches [][]int
	first   chan struct{} // closed when the first flush has begun
	release chan struct{} // the first flush returns once this is closed
}

func newBatchLog() *batchLog {
	return &batchLog{first: make(chan struct{}), release: make(chan struct{})}
}

func (l *batchLog) flush(batch []batchItem) {
	l.mu.Lock()
	ns := make([]int, len(batch))
	for i, it := range batch {
		ns[i] = it.n
	}
	l.batches = append(l.batches, ns)
	firstFlush := len(l.batches) == 1
	l.mu.Unlock()
	if firstFlush {
		close(l.first)
		<-l.release
	}
}

func (l *batchLog) got() [][]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.batches)
}

// TestBatcher: what queues up while a flush runs goes out as the next batch,
// at most max items and at most one item per key; the rest follow in order.
// Item 0 goes first alone and holds the flusher while the others queue.
func TestBatcher(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		max    int
		keys   []string // items 1, 2, ...; "" : no key (the batcher has none)
		want   [][]int
		keyed  bool
		linger time.Duration
	}{
		{name: "one", max: 4, keys: []string{""}, want: [][]int{{0}, {1}}},
		{name: "queued together", max: 4, keys: []string{"", "", ""}, want: [][]int{{0}, {1, 2, 3}}},
		{name: "distinct keys", max: 4, keyed: true, keys: []string{"a", "b", "c"}, want: [][]int{{0}, {1, 2, 3}}},
		{name: "a key twice", max: 4, keyed: true, keys: []string{"a", "b", "a", "c"}, want: [][]int{{0}, {1, 2, 4}, {3}}},
		{name: "a key three times", max: 4, keyed: true, keys: []string{"a", "a", "a"}, want: [][]int{{0}, {1}, {2}, {3}}},
		{name: "full", max: 3, keys: []string{"", "", ""}, want: [][]int{{0}, {1, 2, 3}}},
		{name: "held and full", max: 3, keyed: true, keys: []string{"a", "a", "b"}, want: [][]int{{0}, {1, 3}, {2}}},
		{name: "linger", max: 4, linger: time.Millisecond, keys: []string{"", ""}, want: [][]int{{0}, {1, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := newBatchLog()
			var key func(batchItem) string
			if tc.keyed {
				key = func(it batchItem) string { return it.key }
			}
			b := New(tc.max, tc.linger, log.flush, key)
			b.Start()
			ctx := t.Context()
			if err := b.Add(ctx, batchItem{n: 0, key: "first"}); err != nil {
				t.Fatal(err)
			}
			<-log.first
			for i, k := range tc.keys { // no more than the queue holds
				if err := b.Add(ctx, batchItem{n: i + 1, key: k}); err != nil {
					t.Fatal(err)
				}
			}
			close(log.release)
			if !b.Close(10 * time.Second) {
				t.Fatal("close timed out")
			}
			if got := log.got(); !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("batches %v, want %v", got, tc.want)
			}
		})
	}
}

// Under a stream of items from many callers every item is flushed once, no
// batch exceeds max or holds a key twice, and one key's items keep their
// order.
func TestBatcherUnderLoad(t *testing.T) {
	t.Parallel()
	const callers, perCaller, max, keys = 8, 50, 4, 3
	var (
		mu      sync.Mutex
		seen    = map[int]bool{}
		lastOf  = map[string]int{}
		flushes int
	)
	flush := func(batch []batchItem) {
		mu.Lock()
		defer mu.Unlock()
		flushes++
		if len(batch) > max {
			t.Errorf("batch of %d, max %d", len(batch), max)
		}
		inBatch := map[string]bool{}
		for _, it := range batch {
			if inBatch[it.key] {
				t.Errorf("key %s twice in a batch", it.key)
			}
			inBatch[it.key] = true
			if seen[it.n] {
				t.Errorf("item %d flushed twice", it.n)
			}
			seen[it.n] = true
			if last, ok := lastOf[it.key]; ok && it.n < last {
				t.Errorf("item %d flushed after %d of the same caller and key", it.n, last)
			}
			lastOf[it.key] = it.n
		}
	}
	b := New(max, 0, flush, func(it batchItem) string { return it.key })
	b.Start()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range perCaller {
				n := c*perCaller + i
				// Keys are per caller, so one caller's order is checkable.
				it := batchItem{n: n, key: fmt.Sprint(c, "-", n%keys)}
				if err := b.Add(t.Context(), it); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if !b.Close(10 * time.Second) {
		t.Fatal("close timed out")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != callers*perCaller {
		t.Errorf("%d items flushed, want %d", len(seen), callers*perCaller)
	}
	t.Logf("%d items in %d batches", len(seen), flushes)
}

// After close, add refuses; close gives up on a flush that hangs.
func TestBatcherClose(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	defer close(hang)
	flushed := make(chan int, 1)
	b := New(4, 0, func(batch []int) { flushed <- len(batch); <-hang }, func(n int) int { return n })
	b.Start()
	if err := b.Add(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	<-flushed
	if b.Close(20 * time.Millisecond) {
		t.Error("close reported a hung flush as finished")
	}
	if err := b.Add(t.Context(), 2); !errors.Is(err, ErrClosed) {
		t.Errorf("add after close: %v, want ErrClosed", err)
	}
	// A full queue and an ended context: add gives up with the context.
	full := New(1, 0, func([]int) {}, func(n int) int { return n })
	if err := full.Add(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := full.Add(ctx, 2); !errors.Is(err, context.Canceled) {
		t.Errorf("add to a full queue with an ended context: %v", fmt.Sprint(err))
	}
}
