package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// semaphore caps the deliveries in flight to one receiver across every
// worker process. The slots live in Redis (slots.go), leased, so the slots
// of a worker that died free themselves when their lease runs out.
//
// Asking Redis for a slot on every delivery cost two scripts per
// notification, a sixth of the worker's CPU and a good share of Redis's. So
// a process keeps the slots it took: a delivery that ends leaves its slot
// with the process, and the next delivery to the same receiver takes it
// without a round trip. A background pass (every trimEvery) gives back the
// slots the process did not need since the previous pass and renews the
// leases of those it keeps. A receiver's cap therefore still holds across
// processes at every moment; what the process-local holding costs is that a
// slot one process no longer needs reaches another process up to two passes
// later.
//
// Within its share a process also limits itself with a slow-start window
// (window.go).
type semaphore struct {
	rdb   redis.UniversalClient
	limit int
	lease time.Duration
	log   *slog.Logger
	// owner prefixes this process's slot names; seq numbers them.
	owner string
	seq   atomic.Uint64

	mu   sync.Mutex
	byID map[uuid.UUID]*receiverSlots

	stop chan struct{}
	done chan struct{}
}

// receiverSlots is what one process holds of one receiver's slots.
type receiverSlots struct {
	names []string // slots this process holds in Redis
	inUse int      // deliveries running; may exceed len(names) while Redis is asked, or after it failed open
	peak  int      // most in use since the last trim
	// renewed is when the leases of names were last pushed forward.
	renewed time.Time
	// window is how many deliveries this process lets run at once (slow
	// start), between 1 and the limit.
	window int
}

// newSemaphore returns a semaphore with limit slots per receiver (limit <= 0:
// no cap) whose slots expire lease after they were last renewed.
func newSemaphore(rdb redis.UniversalClient, limit int, lease time.Duration, log *slog.Logger) *semaphore {
	host, _ := os.Hostname()
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	return &semaphore{
		rdb: rdb, limit: limit, lease: lease, log: log,
		owner: host + ":" + strconv.Itoa(os.Getpid()) + ":" + hex.EncodeToString(nonce[:]),
		byID:  make(map[uuid.UUID]*receiverSlots),
	}
}

func (s *semaphore) disabled() bool { return s == nil || s.limit <= 0 }

// acquire takes a slot for a delivery to receiver: one this process holds
// and nobody uses, else a new one from Redis. It fails open: if Redis does
// not answer, the delivery goes ahead (Asynq itself needs Redis, so this is
// brief).
func (s *semaphore) acquire(ctx context.Context, receiver uuid.UUID) bool {
	if s.disabled() {
		return true
	}
	s.mu.Lock()
	rs := s.byID[receiver]
	if rs == nil {
		rs = &receiverSlots{renewed: time.Now(), window: firstWindow(s.limit)}
		s.byID[receiver] = rs
	}
	if rs.windowFull() {
		s.mu.Unlock()
		return false
	}
	rs.inUse++
	rs.peak = max(rs.peak, rs.inUse)
	if rs.inUse <= len(rs.names) {
		s.mu.Unlock()
		return true
	}
	s.mu.Unlock()

	name, err := s.takeSlot(ctx, receiver)

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.log.Warn("receiver concurrency limit unavailable; delivering anyway", "receiver_id", receiver, "err", err)
		return true // counted in inUse without a slot of its own
	case name != "":
		rs.names = append(rs.names, name)
		return true
	default:
		rs.inUse--
		return false
	}
}

// acquireWithin tries for up to wait before giving up. A slot usually frees
// within milliseconds; deferring the task through Asynq instead would cost at
// least a second, since Asynq schedules retries in whole seconds.
func (s *semaphore) acquireWithin(ctx context.Context, receiver uuid.UUID, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for pause := 2 * time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		if s.acquire(ctx, receiver) {
			return true
		}
		if time.Now().Add(pause).After(deadline) {
			return false
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return false
		}
	}
}

// release ends a delivery, which timedOut or not. Its slot stays with the
// process for the next delivery to the same receiver; the trim pass gives
// it back if none comes.
func (s *semaphore) release(receiver uuid.UUID, timedOut bool) {
	if s.disabled() {
		return
	}
	s.mu.Lock()
	if rs := s.byID[receiver]; rs != nil && rs.inUse > 0 {
		rs.inUse--
		rs.adjustWindow(timedOut, s.limit)
	}
	s.mu.Unlock()
}

// start runs the trim pass until close.
func (s *semaphore) start() {
	if s.disabled() {
		return
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.trimEvery())
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.trim(false)
			case <-s.stop:
				s.trim(true)
				return
			}
		}
	}()
}

// close stops the trim pass and gives back every slot not in use; call it
// once no delivery runs any more.
func (s *semaphore) close() {
	if s.disabled() || s.stop == nil {
		return
	}
	close(s.stop)
	<-s.done
}
