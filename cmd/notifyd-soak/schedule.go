package main

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Fault kinds the nemesis performs.
const (
	FKillWorker     = "kill-worker"
	FTermWorker     = "term-worker"
	FKillAPI        = "kill-api"
	FTermAPI        = "term-api"
	FKillScheduler  = "kill-scheduler"
	FTermScheduler  = "term-scheduler"
	FKillRelay      = "kill-relay"
	FRedisEmpty     = "redis-restart-empty"
	FRedisAOF       = "redis-restart-aof"
	FRedisKill      = "redis-kill-master"
	FRedisFailover  = "redis-failover"
	FPostgresCut    = "postgres-cut"
	FReceiverDown   = "receiver-down"
	faultGapMin     = 3 * time.Second
	faultGapSpread  = 7 * time.Second
	firstFaultAfter = 10 * time.Second
)

// faultKinds is every kind, in a fixed order (the schedule draws from it).
var faultKinds = []string{
	FKillWorker, FTermWorker, FKillAPI, FTermAPI, FKillScheduler, FTermScheduler, FKillRelay,
	FRedisEmpty, FRedisAOF, FRedisKill, FRedisFailover, FPostgresCut, FReceiverDown,
}

// Fault is one planned fault: at (offset from the start of the load), kind,
// which member (index among its kind's processes or receivers), and how
// long it lasts before healing (a restart, a restore, a receiver back up).
type Fault struct {
	At     time.Duration
	Kind   string
	Target int
	Hold   time.Duration
}

func (f Fault) String() string {
	return fmt.Sprintf("+%s %s #%d hold %s", f.At.Round(time.Millisecond), f.Kind, f.Target, f.Hold.Round(time.Millisecond))
}

// Plan is the fault schedule for a run of length d: a function of seed only,
// so a seed replays the same faults in the same order at the same offsets.
func Plan(seed uint64, d time.Duration, receivers int) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	var out []Fault
	for at := firstFaultAfter; at < d; at += faultGapMin + time.Duration(rng.Int64N(int64(faultGapSpread))) {
		f := Fault{At: at, Kind: faultKinds[rng.IntN(len(faultKinds))]}
		switch f.Kind {
		case FKillWorker, FTermWorker:
			f.Target = rng.IntN(3)
		case FKillAPI, FTermAPI, FKillScheduler, FTermScheduler:
			f.Target = rng.IntN(2)
		case FReceiverDown:
			f.Target = rng.IntN(receivers)
		}
		f.Hold = time.Second + time.Duration(rng.Int64N(int64(4*time.Second)))
		out = append(out, f)
	}
	return out
}
