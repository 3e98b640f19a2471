package worker

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/testenv"
)

// semaphoreEnv is two worker "processes" sharing one receiver's limit
// through a test's own Redis database.
type semaphoreEnv struct {
	t    *testing.T
	rdb  *redis.Client
	a, b *semaphore
	rcv  uuid.UUID
}

func newSemaphoreEnv(t *testing.T, limit int, lease time.Duration) *semaphoreEnv {
	t.Helper()
	rdb := redis.NewClient(testenv.Redis(t))
	t.Cleanup(func() { rdb.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &semaphoreEnv{t: t, rdb: rdb, rcv: uuid.New(),
		a: newSemaphore(rdb, limit, lease, log), b: newSemaphore(rdb, limit, lease, log)}
}

func (e *semaphoreEnv) want(s *semaphore, name string, want bool) {
	e.t.Helper()
	if got := s.acquire(context.Background(), e.rcv); got != want {
		e.t.Fatalf("%s: acquire = %v, want %v", name, got, want)
	}
}

// slotsInRedis is how many slots Redis counts for the receiver.
func (e *semaphoreEnv) slotsInRedis() int64 {
	e.t.Helper()
	n, err := e.rdb.ZCard(context.Background(), semaphoreKey(e.rcv)).Result()
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// eventually polls cond until it holds or 3 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

func TestSemaphoreLimitIsShared(t *testing.T) {
	t.Parallel()
	e := newSemaphoreEnv(t, 2, time.Minute) // 2 = the initial window: only the shared limit binds
	e.want(e.a, "first slot, process a", true)
	e.want(e.b, "second slot, process b", true)
	e.want(e.a, "third slot, process a", false)
	e.want(e.b, "third slot, process b", false)
	if !e.a.acquire(context.Background(), uuid.New()) {
		t.Fatal("another receiver has slots of its own")
	}
	if n := e.slotsInRedis(); n != 2 {
		t.Fatalf("Redis counts %d slots, want 2", n)
	}
}

// A finished delivery's slot stays with its process, which reuses it
// without Redis; the trim pass hands it to the other process once unused.
func TestSemaphoreKeepsThenGivesBackSlots(t *testing.T) {
	t.Parallel()
	e := newSemaphoreEnv(t, 1, time.Minute)
	e.want(e.a, "a takes the only slot", true)
	e.a.release(e.rcv, false)
	e.want(e.b, "b while a keeps the released slot", false)
	e.want(e.a, "a reuses its slot", true)
	if n := e.slotsInRedis(); n != 1 {
		t.Fatalf("reuse must not take a second slot in Redis: %d", n)
	}
	e.a.release(e.rcv, false)

	e.a.start()
	defer e.a.close()
	eventually(t, "a gives back the unused slot", func() bool { return e.slotsInRedis() == 0 })
	e.want(e.b, "b after a's trim", true)
}

func TestSemaphoreDisabled(t *testing.T) {
	t.Parallel()
	var nilSem *semaphore
	off := newSemaphore(nil, -1, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, s := range []*semaphore{nilSem, off} {
		for range 100 {
			if !s.acquire(context.Background(), uuid.New()) {
				t.Fatal("no cap: acquire must always succeed")
			}
		}
		s.start()
		s.close()
	}
}
