package worker

import (
	"fmt"
	"testing"
	"time"
)

// A process starts a receiver with a small window, widens it with each
// answer and halves it on a timeout, whatever the shared limit allows.
func TestSemaphoreSlowStart(t *testing.T) {
	t.Parallel()
	e := newSemaphoreEnv(t, 10, time.Minute)
	steps := []struct {
		op   string // "acquire", "acquire-fails", "answer", "timeout"
		note string
	}{
		{"acquire", "first delivery"},
		{"acquire", "second: the initial window is 2"},
		{"acquire-fails", "third, although the limit is 10"},
		{"answer", "window 3, 1 in flight"},
		{"acquire", ""},
		{"acquire", ""},
		{"acquire-fails", "window 3 full"},
		{"timeout", "window 1, 2 in flight"},
		{"answer", "window 2, 1 in flight"},
		{"acquire", ""},
		{"acquire-fails", "window 2 full"},
	}
	for i, st := range steps {
		switch st.op {
		case "acquire", "acquire-fails":
			e.want(e.a, fmt.Sprintf("step %d (%s)", i, st.note), st.op == "acquire")
		case "answer", "timeout":
			e.a.release(e.rcv, st.op == "timeout")
		}
	}
	// The other process has its own window, within the shared limit.
	e.want(e.b, "process b's first", true)
}

// The window halves on a timeout and widens by one on an answer, between 1
// and the limit.
func TestAdjustWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		window, limit int
		timedOut      bool
		want          int
	}{
		{window: 2, limit: 10, want: 3},
		{window: 10, limit: 10, want: 10},
		{window: 8, limit: 10, timedOut: true, want: 4},
		{window: 3, limit: 10, timedOut: true, want: 1},
		{window: 1, limit: 10, timedOut: true, want: 1},
	}
	for _, tc := range tests {
		rs := receiverSlots{window: tc.window}
		rs.adjustWindow(tc.timedOut, tc.limit)
		if rs.window != tc.want {
			t.Errorf("window %d, limit %d, timed out %v: %d, want %d", tc.window, tc.limit, tc.timedOut, rs.window, tc.want)
		}
	}
	if got := firstWindow(1); got != 1 {
		t.Errorf("first window under a limit of 1: %d", got)
	}
}
