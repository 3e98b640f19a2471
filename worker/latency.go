package worker

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// latencies keeps a moving average of each receiver's answer time, so a
// delivery waiting for a receiver's slot waits only when slots free quickly:
// briefly for a fast receiver, not at all for one that hangs.
type latencies struct{ byID sync.Map } // uuid.UUID → *atomic.Int64 (ns)

func (l *latencies) observe(receiver uuid.UUID, d time.Duration) {
	v, _ := l.byID.LoadOrStore(receiver, new(atomic.Int64))
	avg := v.(*atomic.Int64)
	old := avg.Load()
	if old == 0 {
		avg.Store(int64(d))
		return
	}
	avg.Store(old + (int64(d)-old)/8) // EWMA, α = 1/8; a lost race only drops one sample
}

// patience is how long to wait for a slot: twice the receiver's usual
// answer time (at least 20 ms) when that is short, nothing when the receiver is slow (its
// slots will not free soon, and waiting would hold a worker), 20 ms for a
// receiver not seen yet.
func (l *latencies) patience(receiver uuid.UUID) time.Duration {
	v, ok := l.byID.Load(receiver)
	if !ok {
		return 20 * time.Millisecond
	}
	if avg := time.Duration(v.(*atomic.Int64).Load()); avg <= 50*time.Millisecond {
		// At least 20 ms: a deferral through Asynq costs a whole second
		// (it keeps due times in whole seconds).
		return max(2*avg, 20*time.Millisecond)
	}
	return 0
}

// busyDelay is how long to defer a delivery that found no free slot: about
// the receiver's usual answer time when that is long (no slot frees sooner,
// and coming back earlier costs the queue another round trip for nothing),
// else a short random delay.
func (l *latencies) busyDelay(receiver uuid.UUID) time.Duration {
	if v, ok := l.byID.Load(receiver); ok {
		if avg := time.Duration(v.(*atomic.Int64).Load()); avg > time.Second {
			return min(avg/2+rand.N(avg/2+1), 15*time.Second)
		}
	}
	return 200*time.Millisecond + rand.N(800*time.Millisecond)
}
