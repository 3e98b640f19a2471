package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// A receiver's slots are one sorted set in Redis whose members are slots
// scored by lease expiry. A process takes a slot with acquireScript and
// gives it back, or renews its lease, in the trim pass.

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

// takeSlot asks Redis for a new slot of receiver: its name, or "" when the
// receiver's slots are all taken.
func (s *semaphore) takeSlot(ctx context.Context, receiver uuid.UUID) (string, error) {
	name := s.owner + ":" + strconv.FormatUint(s.seq.Add(1), 10)
	now := time.Now()
	ok, err := acquireScript.Run(ctx, s.rdb, []string{semaphoreKey(receiver)},
		now.UnixMilli(), now.Add(s.lease).UnixMilli(), s.limit, name, s.lease.Milliseconds()).Int()
	if err != nil || ok != 1 {
		return "", err
	}
	return name, nil
}

// slotRenewal is a receiver's slots whose leases a trim pass renews.
type slotRenewal struct {
	receiver uuid.UUID
	names    []string
}

// trim gives back, for every receiver, the slots beyond the most that were
// in use since the previous pass (all unused ones when final), and renews
// the leases of the slots kept once a quarter of the lease has passed. All
// of it goes to Redis in one pipelined round trip.
func (s *semaphore) trim(final bool) {
	now := time.Now()
	giveBack, renew := s.planTrim(final, now)
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
	s.forgetLost(renew, renewed)
}

// planTrim takes out of the process's holding the slots to give back, and
// lists the slots whose leases are due for renewal.
func (s *semaphore) planTrim(final bool, now time.Time) (giveBack map[uuid.UUID][]string, renew []slotRenewal) {
	giveBack = map[uuid.UUID][]string{}
	s.mu.Lock()
	defer s.mu.Unlock()
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
			renew = append(renew, slotRenewal{id, append([]string(nil), rs.names...)})
			rs.renewed = now
		}
	}
	return giveBack, renew
}

// forgetLost drops the slots Redis no longer had when their leases were
// renewed (it restarted empty, or a pass came too late and they expired),
// so that the next deliveries ask for fresh ones instead of running on
// slots nobody else can see.
func (s *semaphore) forgetLost(renew []slotRenewal, renewed []*redis.IntCmd) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
}
