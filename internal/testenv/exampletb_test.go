package testenv

import (
	"slices"
	"testing"
)

// ExampleTB must behave as the helpers expect of a testing.TB: cleanups on
// Close, last first (a database is dropped after the pool on it is closed),
// Fatal stops at once, Error lets the example go on but fails it at Close.
func TestExampleTB(t *testing.T) {
	tests := []struct {
		name       string
		run        func(tb *ExampleTB)
		panicsRun  bool
		panicClose bool
	}{
		{name: "clean", run: func(tb *ExampleTB) {}},
		{name: "fatal", run: func(tb *ExampleTB) { tb.Fatalf("no %s", "database") }, panicsRun: true},
		{name: "fail now", run: func(tb *ExampleTB) { tb.FailNow() }, panicsRun: true},
		{name: "error", run: func(tb *ExampleTB) { tb.Errorf("worker: %v", "stopped") }, panicClose: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewExampleTB("Example" + tc.name)
			var order []int
			for i := range 3 {
				tb.Cleanup(func() { order = append(order, i) })
			}
			if got := panics(func() { tc.run(tb) }); got != tc.panicsRun {
				t.Fatalf("run panicked: %v, want %v", got, tc.panicsRun)
			}
			if tb.Context().Err() != nil {
				t.Fatal("context cancelled before Close")
			}
			if got := panics(tb.Close); got != tc.panicClose {
				t.Fatalf("Close panicked: %v, want %v", got, tc.panicClose)
			}
			if want := []int{2, 1, 0}; !slices.Equal(order, want) {
				t.Fatalf("cleanups ran in order %v, want %v", order, want)
			}
			if tb.Context().Err() == nil {
				t.Fatal("context not cancelled by Close")
			}
		})
	}
}

func panics(f func()) (did bool) {
	defer func() { did = recover() != nil }()
	f()
	return false
}
