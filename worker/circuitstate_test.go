package worker

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/circuit"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// fleetProc is one simulated worker process's breakers, on a Redis shared
// with the others.
func fleetProc(t *testing.T, rdb redis.UniversalClient, subscribe bool) *fleetBreakers {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := newFleetBreakers(newBreakers(BreakerConfig{Failures: 10, Cooldown: 30 * time.Second}, 5*time.Second, log), rdb, log)
	if subscribe {
		f.start()
		t.Cleanup(f.close)
		waitSubscribed(t, rdb, f)
	}
	return f
}

// waitSubscribed waits until f follows the announcements: a circuit opened
// in Redis reaches its local copy (only the subscriber writes that).
func waitSubscribed(t *testing.T, rdb redis.UniversalClient, f *fleetBreakers) {
	t.Helper()
	ctx := context.Background()
	probe := uuid.New()
	if err := circuit.SetOpen(ctx, rdb, probe, circuit.Open{Until: time.Now().Add(time.Minute), Cooldown: time.Minute}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.local.stateOf(probe) == closed {
		if time.Now().After(deadline) {
			t.Fatal("breakers did not subscribe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := circuit.Close(ctx, rdb, probe); err != nil {
		t.Fatal(err)
	}
}

// withinSecond polls cond for up to a second: the fleet promises changes
// everywhere within one.
func withinSecond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within a second: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func allowed(f *fleetBreakers, rcv uuid.UUID) bool {
	ok, _ := f.allow(context.Background(), rcv)
	return ok
}

func TestFleetBreakers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { rdb.Close() })
	a, b := fleetProc(t, rdb, true), fleetProc(t, rdb, true)
	rcv := uuid.New()

	steps := []struct {
		name string
		do   func()
		want bool // whether both processes allow a delivery afterwards
	}{
		{"failures split across processes, below the threshold", func() {
			for range 4 {
				a.record(ctx, rcv, store.OutcomeFailure)
				b.record(ctx, rcv, store.OutcomeFailure)
			}
		}, true},
		{"the fleet's tenth failure opens the circuit everywhere", func() {
			a.record(ctx, rcv, store.OutcomeFailure)
			b.record(ctx, rcv, store.OutcomeFailure)
		}, false},
		{"a success on one process closes it everywhere", func() {
			b.record(ctx, rcv, store.OutcomeSuccess)
		}, true},
		{"the count started again: nine failures keep it closed", func() {
			for range 9 {
				a.record(ctx, rcv, store.OutcomeFailure)
			}
		}, true},
		{"two timeouts on another process open it", func() {
			b.record(ctx, rcv, store.OutcomeTimeout)
		}, false},
		{"an operator's reset (the API's recover) closes it everywhere", func() {
			if err := circuit.Close(ctx, rdb, rcv); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, s := range steps {
		s.do()
		withinSecond(t, s.name, func() bool { return allowed(a, rcv) == s.want && allowed(b, rcv) == s.want })
	}
}

// A process that missed an announcement (no subscriber here) still defers
// nothing once the fleet closed the circuit: the deferral checks Redis.
func TestFleetBreakersRecheckBeforeDeferring(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { rdb.Close() })
	deaf := fleetProc(t, rdb, false)
	rcv := uuid.New()
	for range 10 {
		deaf.record(ctx, rcv, store.OutcomeFailure)
	}
	if _, open, err := circuit.Get(ctx, rdb, rcv); err != nil || !open {
		t.Fatalf("opening must be recorded in Redis: open=%v err=%v", open, err)
	}
	time.Sleep(recheckEvery) // the check is throttled per receiver
	if allowed(deaf, rcv) {
		t.Fatal("open in Redis and locally: must defer")
	}
	if err := circuit.Close(ctx, rdb, rcv); err != nil {
		t.Fatal(err)
	}
	time.Sleep(recheckEvery)
	if !allowed(deaf, rcv) {
		t.Fatal("closed in Redis: a deferral must find out and deliver")
	}
}

// A process that starts (or reconnects) while a circuit is open takes it
// from Redis.
func TestFleetBreakersReloadOnSubscribe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { rdb.Close() })
	rcv := uuid.New()
	if err := circuit.SetOpen(ctx, rdb, rcv, circuit.Open{Until: time.Now().Add(time.Minute), Cooldown: time.Minute}); err != nil {
		t.Fatal(err)
	}
	late := fleetProc(t, rdb, true)
	withinSecond(t, "a new process adopts the open circuit", func() bool { return !allowed(late, rcv) })
	if !late.prolonged(rcv) {
		t.Fatal("a one-minute open period (past the 30 s first cool-down) is a prolonged outage")
	}
}

// The hot path: a healthy receiver's delivery consults and feeds the
// breaker without any Redis round trip. Compare with the local breakers.
func BenchmarkBreakerHealthyDelivery(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rcv := uuid.New()
	ctx := context.Background()
	b.Run("local", func(b *testing.B) {
		br := newBreakers(BreakerConfig{}, 5*time.Second, log)
		for b.Loop() {
			br.allow(rcv)
			br.record(rcv, store.OutcomeSuccess)
		}
	})
	b.Run("fleet", func(b *testing.B) {
		// An unreachable address: any round trip would show as an error.
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		defer rdb.Close()
		f := newFleetBreakers(newBreakers(BreakerConfig{}, 5*time.Second, log), rdb, log)
		for b.Loop() {
			f.allow(ctx, rcv)
			f.record(ctx, rcv, store.OutcomeSuccess)
		}
	})
}
