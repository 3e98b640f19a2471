package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
)

// ExampleTB is the testing.TB of a runnable example, which gets no
// *testing.T but needs a database and Redis as tests do. Fatal panics, which
// fails the example; Error is reported on stderr (an example checks stdout
// only) and makes Close panic. Close runs the cleanups, last first.
//
// Only the methods the test helpers use are implemented; the embedded nil
// testing.TB makes any other call panic, which is loud rather than silent.
type ExampleTB struct {
	testing.TB
	name     string
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	ctx      context.Context
	cancel   context.CancelFunc
}

// NewExampleTB returns a testing.TB for the example called name.
func NewExampleTB(name string) *ExampleTB {
	ctx, cancel := context.WithCancel(context.Background())
	return &ExampleTB{name: name, ctx: ctx, cancel: cancel}
}

// Close runs the cleanups and panics if an error was reported.
func (tb *ExampleTB) Close() {
	tb.cancel()
	for {
		tb.mu.Lock()
		n := len(tb.cleanups)
		if n == 0 {
			tb.mu.Unlock()
			break
		}
		f := tb.cleanups[n-1]
		tb.cleanups = tb.cleanups[:n-1]
		tb.mu.Unlock()
		f()
	}
	if tb.Failed() {
		panic(tb.name + ": failed, see stderr")
	}
}

// Cleanup registers f to run on Close.
func (tb *ExampleTB) Cleanup(f func()) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.cleanups = append(tb.cleanups, f)
}

// Context is cancelled when Close starts, as a test's is before cleanups.
func (tb *ExampleTB) Context() context.Context { return tb.ctx }

// Helper does nothing: there is no test log whose lines it would adjust.
func (tb *ExampleTB) Helper() {}

// Name is the example's name.
func (tb *ExampleTB) Name() string { return tb.name }

// Failed reports whether Error or Errorf was called.
func (tb *ExampleTB) Failed() bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.failed
}

// Log discards its arguments: an example's stdout is its checked output.
func (tb *ExampleTB) Log(args ...any) {}

// Logf discards its arguments, as Log does.
func (tb *ExampleTB) Logf(format string, args ...any) {}

// Error reports a failure on stderr and goes on.
func (tb *ExampleTB) Error(args ...any) { tb.fail(fmt.Sprint(args...)) }

// Errorf reports a failure on stderr and goes on.
func (tb *ExampleTB) Errorf(format string, args ...any) { tb.fail(fmt.Sprintf(format, args...)) }

// Fatal panics, which fails the example.
func (tb *ExampleTB) Fatal(args ...any) { panic(tb.name + ": " + fmt.Sprint(args...)) }

// Fatalf panics, which fails the example.
func (tb *ExampleTB) Fatalf(format string, args ...any) {
	panic(tb.name + ": " + fmt.Sprintf(format, args...))
}

// FailNow panics, which fails the example.
func (tb *ExampleTB) FailNow() { panic(tb.name + ": FailNow") }

func (tb *ExampleTB) fail(msg string) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", tb.name, msg)
	tb.mu.Lock()
	tb.failed = true
	tb.mu.Unlock()
}
