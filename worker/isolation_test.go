package worker

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
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
	clock = clock.Add(10 * time.Second)
	step("cool-down over: one probe", true)
	step("while the probe runs, others wait", false)
	b.record(rcv, store.OutcomeFailure)
	if ok, wait := b.allow(rcv); ok || wait != 20*time.Second {
		t.Fatalf("failed probe doubles the cool-down: ok=%v wait=%s", ok, wait)
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

	// Three consecutive timeouts weigh as much as the default threshold.
	timeouts := newBreakers(BreakerConfig{}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	slow := uuid.New()
	for i := 1; i <= 3; i++ {
		timeouts.record(slow, store.OutcomeTimeout)
		if ok, _ := timeouts.allow(slow); ok != (i < 3) {
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

func TestSemaphoreSharedLimitAndLease(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(testenv.Redis(t))
	defer rdb.Close()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Two "processes" share the limit through Redis.
	a := &semaphore{rdb: rdb, limit: 2, lease: 300 * time.Millisecond, log: log}
	b := &semaphore{rdb: rdb, limit: 2, lease: 300 * time.Millisecond, log: log}
	rcv := uuid.New()
	if !a.acquire(ctx, rcv, "t1") || !b.acquire(ctx, rcv, "t2") {
		t.Fatal("two slots must be free")
	}
	if a.acquire(ctx, rcv, "t3") || b.acquire(ctx, rcv, "t3") {
		t.Fatal("third holder must wait")
	}
	if !a.acquire(ctx, uuid.New(), "t3") {
		t.Fatal("another receiver has its own slots")
	}
	b.release(rcv, "t2")
	deadline := time.Now().Add(2 * time.Second)
	for !a.acquire(ctx, rcv, "t4") {
		if time.Now().After(deadline) {
			t.Fatal("released slot never became free")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// t1 and t4 are never released (their worker "died"): the lease frees them.
	time.Sleep(350 * time.Millisecond)
	if !a.acquire(ctx, rcv, "t5") || !a.acquire(ctx, rcv, "t6") {
		t.Fatal("expired leases must free their slots")
	}
}
