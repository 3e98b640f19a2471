package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/circuit"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// fleetBreakers makes the per-process breakers one breaker per receiver for
// the whole fleet. The process's own breakers stay the cache every delivery
// consults without a round trip; Redis (internal/circuit) holds what the
// fleet agrees on, and only changes go through it:
//
//   - a failed attempt is counted fleet-wide (one round trip, on the failure
//     path only); the process whose count reaches the threshold opens the
//     circuit and announces it;
//   - a success while the circuit is open or probing, here or anywhere,
//     including a manual redelivery, closes it and announces it; a success
//     after failures this process counted resets the count;
//   - every process subscribes to the announcements and reads the state back
//     (on reconnect: all of it), so a change reaches the fleet within
//     milliseconds;
//   - a delivery the local copy would defer checks the fleet's state first
//     (at most every recheckEvery per receiver), so a close whose
//     announcement has not arrived yet, or was lost, defers nothing.
//
// When Redis fails, each process falls back to counting on its own.
type fleetBreakers struct {
	local *breakers
	rdb   redis.UniversalClient
	log   *slog.Logger

	counted sync.Map // uuid.UUID → struct{}: failures added to the fleet count since this process's last success
	checked sync.Map // uuid.UUID → time.Time: last check of the fleet's state before deferring

	stop context.CancelFunc
	done chan struct{}
}

const (
	// redisBudget bounds a Redis call made on a delivery's behalf.
	redisBudget = 500 * time.Millisecond
	// recheckEvery is how often, per receiver, a deferral checks the fleet's
	// state: a burst of deferrals costs one read, not one each.
	recheckEvery = 250 * time.Millisecond
)

func newFleetBreakers(local *breakers, rdb redis.UniversalClient, log *slog.Logger) *fleetBreakers {
	return &fleetBreakers{local: local, rdb: rdb, log: log}
}

func (f *fleetBreakers) disabled() bool { return f.local.cfg.Failures < 0 }

func (f *fleetBreakers) prolonged(receiver uuid.UUID) bool { return f.local.prolonged(receiver) }

// allow reports whether a delivery to receiver may start now; if not, wait
// is when to try again.
func (f *fleetBreakers) allow(ctx context.Context, receiver uuid.UUID) (bool, time.Duration) {
	ok, wait := f.local.allow(receiver)
	if ok || !f.recheckDue(receiver) {
		return ok, wait
	}
	ctx, cancel := context.WithTimeout(ctx, redisBudget)
	defer cancel()
	o, open, err := circuit.Get(ctx, f.rdb, receiver)
	if err != nil {
		return ok, wait // trust the local copy
	}
	if !open {
		f.local.closeLocal(receiver, f.log)
		f.checked.Delete(receiver)
	} else {
		f.local.adopt(receiver, o, f.log)
	}
	return f.local.allow(receiver)
}

func (f *fleetBreakers) recheckDue(receiver uuid.UUID) bool {
	now := time.Now()
	if v, ok := f.checked.Load(receiver); ok && now.Sub(v.(time.Time)) < recheckEvery {
		return false
	}
	f.checked.Store(receiver, now)
	return true
}

// record feeds an attempt's outcome (automatic or manual) back.
func (f *fleetBreakers) record(ctx context.Context, receiver uuid.UUID, outcome string) {
	if f.disabled() {
		return
	}
	before := f.local.stateOf(receiver)
	if outcome == store.OutcomeSuccess || outcome == store.OutcomeGone {
		f.local.record(receiver, outcome)
		_, counted := f.counted.LoadAndDelete(receiver)
		if before == closed && !counted {
			return // the hot path: nothing for the fleet to hear
		}
		ctx, cancel := redisContext(ctx)
		defer cancel()
		switch {
		case before != closed:
			f.checked.Delete(receiver)
			f.redisFailed("announce closed circuit", receiver, circuit.Close(ctx, f.rdb, receiver))
		case counted:
			f.redisFailed("reset failure count", receiver, circuit.ResetFailures(ctx, f.rdb, receiver))
		}
		return
	}
	if before == open {
		return // a delivery that started before the circuit opened
	}
	ctx, cancel := redisContext(ctx)
	defer cancel()
	if before == probing {
		f.local.record(receiver, outcome) // opens again, for longer
		if o, ok := f.local.openState(receiver); ok {
			f.redisFailed("announce open circuit", receiver, circuit.SetOpen(ctx, f.rdb, receiver, o))
		}
		return
	}
	n, err := circuit.AddFailures(ctx, f.rdb, receiver, f.local.weight(outcome), f.local.cfg.MaxCooldown)
	if err != nil {
		f.redisFailed("count failure", receiver, err)
		f.local.record(receiver, outcome) // this process's breaker alone
		return
	}
	f.counted.Store(receiver, struct{}{})
	if n >= f.local.cfg.Failures {
		o := f.local.openFor(receiver, n)
		f.redisFailed("announce open circuit", receiver, circuit.SetOpen(ctx, f.rdb, receiver, o))
	}
}

// redisContext bounds a Redis call made for a delivery. Announcements go out
// even when the delivery's context ends (a shutdown): the rest of the fleet
// depends on them.
func redisContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), redisBudget)
}

func (f *fleetBreakers) redisFailed(what string, receiver uuid.UUID, err error) {
	if err != nil {
		metrics.InfraErrors.WithLabelValues("redis").Inc()
		f.log.Warn("circuit: "+what+" failed; other workers learn of it late", "receiver_id", receiver, "err", err)
	}
}

// start follows the fleet's announcements until close.
func (f *fleetBreakers) start() {
	if f.disabled() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop, f.done = cancel, make(chan struct{})
	ps := f.rdb.Subscribe(ctx, circuit.Channel)
	go func() {
		defer close(f.done)
		defer ps.Close()
		// Subscription messages mark every (re)connection: what was
		// announced while disconnected is read back in full.
		ch := ps.ChannelWithSubscriptions()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-ch:
				if !ok {
					return
				}
				switch m := m.(type) {
				case *redis.Subscription:
					if m.Kind == "subscribe" {
						f.reload(ctx)
					}
				case *redis.Message:
					if id, err := uuid.Parse(m.Payload); err == nil {
						f.refresh(ctx, id)
					}
				}
			}
		}
	}()
}

func (f *fleetBreakers) close() {
	if f.stop != nil {
		f.stop()
		<-f.done
	}
}

// refresh makes the local copy of receiver's circuit the fleet's.
func (f *fleetBreakers) refresh(ctx context.Context, receiver uuid.UUID) {
	ctx, cancel := context.WithTimeout(ctx, redisBudget)
	defer cancel()
	o, open, err := circuit.Get(ctx, f.rdb, receiver)
	switch {
	case err != nil:
		f.log.Debug("circuit: read announced state", "receiver_id", receiver, "err", err)
	case open:
		f.local.adopt(receiver, o, f.log)
	default:
		f.local.closeLocal(receiver, f.log)
		f.checked.Delete(receiver)
	}
}

// reload makes every local circuit the fleet's.
func (f *fleetBreakers) reload(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	all, err := circuit.All(ctx, f.rdb)
	if err != nil {
		f.log.Warn("circuit: reload fleet state", "err", err)
		return
	}
	for id, o := range all {
		f.local.adopt(id, o, f.log)
	}
	for _, id := range f.local.notClosed() {
		if _, ok := all[id]; !ok {
			f.local.closeLocal(id, f.log)
		}
	}
}

// The methods below let fleetBreakers read and set the local breakers.

func (b *breakers) stateOf(receiver uuid.UUID) breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	if br := b.byID[receiver]; br != nil {
		return br.state
	}
	return closed
}

func (b *breakers) openState(receiver uuid.UUID) (circuit.Open, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.byID[receiver]
	if br == nil || br.state != open {
		return circuit.Open{}, false
	}
	return circuit.Open{Until: br.openUntil, Cooldown: br.cooldown}, true
}

// openFor opens receiver's circuit for the first cool-down after failures
// counted fleet-wide.
func (b *breakers) openFor(receiver uuid.UUID, failures int) circuit.Open {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.byID[receiver]
	if br == nil {
		br = &breaker{}
		b.byID[receiver] = br
	}
	br.state, br.failures, br.cooldown = open, failures, b.cfg.Cooldown
	br.openUntil = b.now().Add(br.cooldown)
	metrics.BreakerTransitions.WithLabelValues("open").Inc()
	b.log.Warn("circuit open: deferring deliveries to failing receiver", "receiver_id", receiver,
		"consecutive_failures_fleet_wide", failures, "cooldown", br.cooldown)
	return circuit.Open{Until: br.openUntil, Cooldown: br.cooldown}
}

// adopt takes an open period another process announced, unless this process
// already knows the same or a later one.
func (b *breakers) adopt(receiver uuid.UUID, o circuit.Open, log *slog.Logger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.byID[receiver]
	if br == nil {
		br = &breaker{}
		b.byID[receiver] = br
	}
	if br.state != closed && !o.Until.After(br.openUntil) {
		return
	}
	if br.state == closed {
		log.Info("circuit open elsewhere in the fleet: deferring deliveries", "receiver_id", receiver, "until", o.Until)
	}
	br.state, br.openUntil, br.cooldown = open, o.Until, o.Cooldown
}

// closeLocal closes receiver's circuit because the fleet closed it.
func (b *breakers) closeLocal(receiver uuid.UUID, log *slog.Logger) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if br := b.byID[receiver]; br != nil {
		if br.state != closed {
			log.Info("circuit closed elsewhere in the fleet", "receiver_id", receiver)
		}
		delete(b.byID, receiver)
	}
}

func (b *breakers) notClosed() []uuid.UUID {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []uuid.UUID
	for id, br := range b.byID {
		if br.state != closed {
			ids = append(ids, id)
		}
	}
	return ids
}
