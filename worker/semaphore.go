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
// worker process. The slots live in Redis, one sorted set per receiver whose
// members are slots scored by lease expiry, so the slots of a worker that
// died free themselves when their lease runs out.
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
// Within its share a process also limits itself with a window per receiver
// that starts small and grows with each answer (slow start): a receiver
// that hangs holds only a couple of workers until the circuit breaker has
// seen enough timeouts to open, instead of up to the whole limit; a
// timeout halves the window, a timely answer widens it by one.
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

// initialWindow is the window of a receiver this process has not heard
// from: enough for a fast receiver's first deliveries to overlap, few
// enough that many hanging receivers cannot take every worker.
const initialWindow = 2

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

// acquireScript: drop expired slots; add slot ARGV[4] if there is room.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0`)

func semaphoreKey(receiver uuid.UUID) string { return "notifyd:inflight:" + receiver.String() }

// trimEvery is how often unneeded slots go back to Redis and kept slots are
// renewed. Short, so that another process waits little for a slot this one
// stopped using; long enough that a steady stream of deliveries to a
// receiver keeps its slots between passes.
func (s *semaphore) trimEvery() time.Duration { return min(200*time.Millisecond, s.lease/4) }

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
		rs = &receiverSlots{renewed: time.Now(), window: min(initialWindow, s.limit)}
		s.byID[receiver] = rs
	}
	if rs.inUse >= rs.window {
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

	name := s.owner + ":" + strconv.FormatUint(s.seq.Add(1), 10)
	now := time.Now()
	ok, err := acquireScript.Run(ctx, s.rdb, []string{semaphoreKey(receiver)},
		now.UnixMilli(), now.Add(s.lease).UnixMilli(), s.limit, name, s.lease.Milliseconds()).Int()

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.log.Warn("receiver concurrency limit unavailable; delivering anyway", "receiver_id", receiver, "err", err)
		return true // counted in inUse without a slot of its own
	case ok == 1:
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
		if timedOut {
			rs.window = max(1, rs.window/2)
		} else {
			rs.window = min(s.limit, rs.window+1)
		}
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

// trim gives back, for every receiver, the slots beyond the most that were
// in use since the previous pass (all unused ones when final), and renews
// the leases of the slots kept once a quarter of the lease has passed. All
// of it goes to Redis in one pipelined round trip.
func (s *semaphore) trim(final bool) {
	now := time.Now()
	type renewal struct {
		receiver uuid.UUID
		names    []string
	}
	var (
		giveBack = map[uuid.UUID][]string{}
		renew    []renewal
	)
	s.mu.Lock()
	for id, rs := range s.byID {
		keep := min(max(rs.peak, rs.inUse), len(rs.names))
		if final {
			keep = min(rs.inUse, len(rs.names))
		}
		if keep < len(rs.names) {
			giveBack[id] = append([]string(nil), rs.names[keep:]...)
			clear(rs.names[keep:])
			rs.names = rs.names[:keep]
		}
		rs.peak = rs.inUse
		switch {
		case len(rs.names) == 0 && rs.inUse == 0:
			delete(s.byID, id)
		case len(rs.names) > 0 && now.Sub(rs.renewed) >= s.lease/4:
			renew = append(renew, renewal{id, append([]string(nil), rs.names...)})
			rs.renewed = now
		}
	}
	s.mu.Unlock()
	if len(giveBack) == 0 && len(renew) == 0 {
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	expiry := float64(now.Add(s.lease).UnixMilli())
	pipe := s.rdb.Pipeline()
	for id, names := range giveBack {
		members := make([]any, len(names))
		for i, n := range names {
			members[i] = n
		}
		pipe.ZRem(ctx, semaphoreKey(id), members...)
	}
	renewed := make([]*redis.IntCmd, len(renew))
	for i, r := range renew {
		zs := make([]redis.Z, len(r.names))
		for j, n := range r.names {
			zs[j] = redis.Z{Score: expiry, Member: n}
		}
		// XX: only slots Redis still has; CH: count them.
		renewed[i] = pipe.ZAddArgs(ctx, semaphoreKey(r.receiver), redis.ZAddArgs{XX: true, Ch: true, Members: zs})
		pipe.PExpire(ctx, semaphoreKey(r.receiver), s.lease)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		// A lost give-back is bounded by the lease; a lost renewal is
		// retried on the next pass only if Redis answers by then.
		s.log.Warn("receiver concurrency slots: trim failed", "err", err)
		s.mu.Lock()
		for _, r := range renew {
			if rs := s.byID[r.receiver]; rs != nil {
				rs.renewed = time.Time{}
			}
		}
		s.mu.Unlock()
		return
	}
	// Redis lost slots (restarted empty, or a pass came too late and they
	// expired): forget them, so that the next deliveries ask for fresh ones
	// instead of running on slots nobody else can see.
	s.mu.Lock()
	for i, r := range renew {
		if n, _ := renewed[i].Result(); int(n) < len(r.names) {
			if rs := s.byID[r.receiver]; rs != nil {
				s.log.Warn("receiver concurrency slots lost in Redis; taking new ones", "receiver_id", r.receiver, "held", len(r.names), "found", n)
				// The renewed names are still the first ones: only trim,
				// which runs on one goroutine, shortens the list.
				rs.names = append(rs.names[:0], rs.names[len(r.names):]...)
			}
		}
	}
	s.mu.Unlock()
}
