package worker

import (
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// BreakerConfig tunes the circuit breaker.
type BreakerConfig struct {
	// Failures is how many consecutive failed attempts open the circuit
	// (default 10; negative disables the breaker).
	Failures int
	// Cooldown is the first open period (default 30 s); it doubles each
	// time a probe fails, up to MaxCooldown (default 10 min).
	Cooldown    time.Duration
	MaxCooldown time.Duration
}

func (c *BreakerConfig) setDefaults() {
	if c.Failures == 0 {
		c.Failures = 10
	}
	if c.Cooldown <= 0 {
		c.Cooldown = 30 * time.Second
	}
	if c.MaxCooldown <= 0 {
		c.MaxCooldown = 10 * time.Minute
	}
}

type breakerState int

const (
	closed breakerState = iota
	open
	probing // half-open: one probe is in flight
)

type breaker struct {
	state     breakerState
	failures  int
	cooldown  time.Duration
	openUntil time.Time
	probeEnds time.Time // a probe that never reports back stops blocking here
}

// breakers is this process's copy of the fleet-wide circuits, one per
// receiver it has seen fail: every delivery consults it without a round
// trip, and fleetBreakers (circuitstate.go) keeps it in step with the state
// the fleet shares through Redis. On its own (Redis unreachable) it is a
// breaker per process.
type breakers struct {
	cfg       BreakerConfig
	probeWait time.Duration // how long a probe may take before another is allowed
	mu        sync.Mutex
	byID      map[uuid.UUID]*breaker
	now       func() time.Time
	log       *slog.Logger
}

func newBreakers(cfg BreakerConfig, probeWait time.Duration, log *slog.Logger) *breakers {
	cfg.setDefaults()
	return &breakers{cfg: cfg, probeWait: probeWait, byID: make(map[uuid.UUID]*breaker), now: time.Now, log: log}
}

// prolonged reports whether receiver's circuit has stayed open past a
// failed probe: the receiver is down for longer than one cool-down.
func (b *breakers) prolonged(receiver uuid.UUID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.byID[receiver]
	return br != nil && br.state != closed && br.cooldown > b.cfg.Cooldown
}

// allow reports whether a delivery to receiver may start now; if not, wait
// is when to try again.
func (b *breakers) allow(receiver uuid.UUID) (ok bool, wait time.Duration) {
	if b.cfg.Failures < 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.byID[receiver]
	if br == nil {
		return true, 0
	}
	now := b.now()
	switch br.state {
	case open:
		if now.Before(br.openUntil) {
			return false, br.openUntil.Sub(now)
		}
		br.state, br.probeEnds = probing, now.Add(b.probeWait)
		return true, 0 // this delivery is the probe
	case probing:
		if now.Before(br.probeEnds) {
			return false, time.Second
		}
		br.probeEnds = now.Add(b.probeWait) // the last probe was lost; try another
		return true, 0
	}
	return true, 0
}

// weight is how much a failed attempt counts toward the threshold, here and
// in the fleet-wide count. A timeout weighs half the threshold (two in a
// row open the circuit): it is the failure that costs a worker slot for the
// whole timeout. A receiver that hangs has the two deliveries of its
// slow-start window in flight, which time out together, so its circuit
// opens after one timeout period; each further period it stayed closed
// would cost workers and a round of deferrals.
func (b *breakers) weight(outcome string) int {
	if outcome == store.OutcomeTimeout {
		return max(1, (b.cfg.Failures+1)/2)
	}
	return 1
}

// record feeds an attempt's outcome back into this process's copy; a
// failure adds its weight.
func (b *breakers) record(receiver uuid.UUID, outcome string) {
	healthy := outcome == store.OutcomeSuccess || outcome == store.OutcomeGone
	if b.cfg.Failures < 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.byID[receiver]
	if healthy {
		if br != nil {
			if br.state != closed {
				b.log.Info("circuit closed: receiver answers again", "receiver_id", receiver)
				metrics.BreakerTransitions.WithLabelValues("closed").Inc()
			}
			delete(b.byID, receiver) // closed and healthy: nothing to remember
		}
		return
	}
	if br == nil {
		br = &breaker{}
		b.byID[receiver] = br
	}
	now := b.now()
	switch br.state {
	case closed:
		br.failures += b.weight(outcome)
		if br.failures < b.cfg.Failures {
			return
		}
		br.cooldown = b.cfg.Cooldown
	case probing:
		br.cooldown = min(2*br.cooldown, b.cfg.MaxCooldown)
	case open:
		return // a delivery that started before the circuit opened
	}
	br.state, br.openUntil = open, now.Add(br.cooldown)
	metrics.BreakerTransitions.WithLabelValues("open").Inc()
	b.log.Warn("circuit open: deferring deliveries to failing receiver", "receiver_id", receiver,
		"consecutive_failures", br.failures, "cooldown", br.cooldown)
}
