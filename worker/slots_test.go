package worker

import (
	"context"
	"testing"
	"time"
)

// A slot in use longer than its lease is renewed, so nobody else gets it;
// slots of a process that died (no trim pass) expire with their lease.
func TestSemaphoreLease(t *testing.T) {
	t.Parallel()
	const lease = 300 * time.Millisecond
	e := newSemaphoreEnv(t, 1, lease)
	e.a.start()
	defer e.a.close()
	e.want(e.a, "a takes the slot", true)
	time.Sleep(3 * lease)
	e.want(e.b, "b while a's delivery still runs past the lease", false)
	e.a.release(e.rcv, false)
	eventually(t, "b gets the slot a no longer uses", func() bool { return e.b.acquire(context.Background(), e.rcv) })

	// b "dies" holding the slot: it never trims nor renews.
	time.Sleep(lease + 50*time.Millisecond)
	e.want(e.a, "a after b's lease ran out", true)
}

// When Redis loses the slots (restarted empty), the holder notices on its
// next renewal and asks for new ones rather than running on slots that
// nobody else can see.
func TestSemaphoreRedisLosesSlots(t *testing.T) {
	t.Parallel()
	const lease = 200 * time.Millisecond
	e := newSemaphoreEnv(t, 1, lease)
	e.want(e.a, "a takes the slot", true)
	if err := e.rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	e.a.start()
	defer e.a.close()
	eventually(t, "a forgets the lost slot", func() bool {
		e.a.mu.Lock()
		defer e.a.mu.Unlock()
		rs := e.a.byID[e.rcv]
		return rs != nil && len(rs.names) == 0
	})
	e.a.release(e.rcv, false)
	e.want(e.a, "a takes a new slot from Redis", true)
	if n := e.slotsInRedis(); n != 1 {
		t.Fatalf("the new slot must be in Redis: %d", n)
	}
}

// Closing gives every slot not in use back to Redis.
func TestSemaphoreCloseGivesBackEverything(t *testing.T) {
	t.Parallel()
	e := newSemaphoreEnv(t, 5, time.Minute)
	e.a.start()
	e.want(e.a, "slot", true)
	e.want(e.a, "slot", true)
	e.a.release(e.rcv, false)
	e.want(e.a, "slot", true)
	e.want(e.a, "slot", true)
	for range 3 {
		e.a.release(e.rcv, false)
	}
	e.a.close()
	if n := e.slotsInRedis(); n != 0 {
		t.Fatalf("%d slots left in Redis after close", n)
	}
}
