package worker

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

func TestBreaker(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1_700_000_000, 0)
	b := newBreakers(BreakerConfig{Failures: 3, Cooldown: 10 * time.Second, MaxCooldown: 25 * time.Second}, 5*time.Second,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.now = func() time.Time { return clock }
	rcv := uuid.New()
	step := func(name string, wantOK bool) {
		t.Helper()
		if ok, _ := b.allow(rcv); ok != wantOK {
			t.Fatalf("%s: allow = %v, want %v", name, ok, wantOK)
		}
	}
	step("fresh receiver", true)
	b.record(rcv, store.OutcomeFailure)
	b.record(rcv, store.OutcomeFailure)
	step("two failures stay closed", true)
	b.record(rcv, store.OutcomeSuccess)
	b.record(rcv, store.OutcomeFailure)
	b.record(rcv, store.OutcomeFailure)
	step("a success resets the count", true)
	b.record(rcv, store.OutcomeFailure)
	if ok, wait := b.allow(rcv); ok || wait != 10*time.Second {
		t.Fatalf("third consecutive failure must open for 10s: ok=%v wait=%s", ok, wait)
	}
	if b.prolonged(rcv) {
		t.Fatal("first cool-down: not a prolonged outage yet")
	}
	clock = clock.Add(10 * time.Second)
	step("cool-down over: one probe", true)
	step("while the probe runs, others wait", false)
	b.record(rcv, store.OutcomeFailure)
	if ok, wait := b.allow(rcv); ok || wait != 20*time.Second {
		t.Fatalf("failed probe doubles the cool-down: ok=%v wait=%s", ok, wait)
	}
	if !b.prolonged(rcv) {
		t.Fatal("a failed probe makes the outage prolonged")
	}
	clock = clock.Add(20 * time.Second)
	step("second probe", true)
	b.record(rcv, store.OutcomeFailure)
	if _, wait := b.allow(rcv); wait != 25*time.Second {
		t.Fatalf("cool-down capped at 25s, got %s", wait)
	}
	clock = clock.Add(25 * time.Second)
	step("third probe", true)
	clock = clock.Add(6 * time.Second)
	step("a probe that never reports back is replaced", true)
	b.record(rcv, store.OutcomeSuccess)
	step("closed again", true)
	step("and stays closed", true)
	if b.prolonged(rcv) {
		t.Fatal("closed: no outage")
	}

	// Two consecutive timeouts weigh as much as the default threshold.
	timeouts := newBreakers(BreakerConfig{}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	slow := uuid.New()
	for i := 1; i <= 2; i++ {
		timeouts.record(slow, store.OutcomeTimeout)
		if ok, _ := timeouts.allow(slow); ok != (i < 2) {
			t.Fatalf("after %d timeouts allow = %v", i, ok)
		}
	}

	other := uuid.New()
	disabled := newBreakers(BreakerConfig{Failures: -1}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for range 100 {
		disabled.record(other, store.OutcomeTimeout)
	}
	if ok, _ := disabled.allow(other); !ok {
		t.Fatal("a disabled breaker never opens")
	}
}
