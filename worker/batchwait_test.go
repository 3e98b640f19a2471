package worker

import "testing"

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
