package query

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/fleet"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// fakeClock is shared by a server's key cache and the test.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestAPIKeyCacheBound: whatever happens to a receiver or its key, an API
// process that has the key cached stops accepting it within apiKeyCacheTTL
// (the bound the README promises); a change made through the API reaches
// every process within a second through the invalidation channel, and the
// changing process at once.
func TestAPIKeyCacheBound(t *testing.T) {
	a := newTestAPI(t)
	tests := []struct {
		name string
		// change is applied once the key is cached on both servers.
		change func(a *testAPI, r testReceiver)
		// viaAPI: the change is published, so the other process refuses
		// within a second of real time without its cache expiring.
		viaAPI bool
		// wantSame: the answer of the server that made the change, at once;
		// wantOther: the answer of another API process, once the bound has
		// passed (until then it may still answer 200).
		wantSame, wantOther int
	}{
		{
			name: "deactivated through the API",
			change: func(a *testAPI, r testReceiver) {
				a.must(http.StatusOK, "PATCH", "/v1/receivers/"+r.ID.String(), testAdminToken, map[string]any{"active": false}, nil)
			},
			viaAPI: true, wantSame: http.StatusForbidden, wantOther: http.StatusForbidden,
		},
		{
			name: "key revoked through the API",
			change: func(a *testAPI, r testReceiver) {
				var keys struct{ Data []struct{ ID string } }
				a.must(http.StatusOK, "GET", "/v1/receivers/"+r.ID.String()+"/api-keys", testAdminToken, nil, &keys)
				a.must(http.StatusNoContent, "DELETE", "/v1/receivers/"+r.ID.String()+"/api-keys/"+keys.Data[0].ID, testAdminToken, nil, nil)
			},
			viaAPI: true, wantSame: http.StatusUnauthorized, wantOther: http.StatusUnauthorized,
		},
		{
			name: "deactivated in the database",
			change: func(a *testAPI, r testReceiver) {
				a.exec(`UPDATE receivers SET active = false WHERE id = $1`, r.ID)
			},
			wantSame: http.StatusOK, wantOther: http.StatusForbidden,
		},
		{
			name: "key replaced in the database",
			change: func(a *testAPI, r testReceiver) {
				a.exec(`UPDATE receiver_api_keys SET key_hash = $2 WHERE receiver_id = $1`, r.ID, store.HashAPIKey(newAPIKey()))
			},
			wantSame: http.StatusOK, wantOther: http.StatusUnauthorized,
		},
		{
			name: "receiver deleted",
			change: func(a *testAPI, r testReceiver) {
				a.exec(`DELETE FROM receivers WHERE id = $1`, r.ID)
			},
			wantSame: http.StatusOK, wantOther: http.StatusUnauthorized,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Two API processes of one deployment, each with its own cache
			// and clock.
			one, other := a.with(t).serve(), a.with(t).serve()
			clocks := map[*testAPI]*fakeClock{one: {}, other: {}}
			for s, c := range clocks {
				c.ns.Store(time.Now().UnixNano())
				s.srv.auth.creds.keys.SetClock(c.now)
			}
			r := one.receiver()
			status := func(s *testAPI) int {
				code, _ := s.do("GET", "/v1/notifications?limit=1", r.APIKey, nil)
				return code
			}
			for _, s := range []*testAPI{one, other} {
				if code := status(s); code != http.StatusOK {
					t.Fatalf("before the change: %d", code)
				}
			}
			tc.change(one, r)
			if code := status(one); code != tc.wantSame {
				t.Errorf("the changing process at once: %d, want %d", code, tc.wantSame)
			}
			if tc.viaAPI {
				// No clock moves: only the invalidation can end the cached entry.
				start := time.Now()
				for code := status(other); code != tc.wantOther; code = status(other) {
					if time.Since(start) > time.Second {
						t.Fatalf("another process after %s: %d, want %d", time.Since(start), code, tc.wantOther)
					}
					time.Sleep(10 * time.Millisecond)
				}
				return
			}
			// The other process still has the key cached: this is the
			// staleness the bound is about.
			clocks[other].advance(apiKeyCacheTTL - time.Millisecond)
			if code := status(other); code != http.StatusOK {
				t.Errorf("another process within the bound: %d, want 200 (cached)", code)
			}
			for _, s := range []*testAPI{one, other} {
				clocks[s].advance(apiKeyCacheTTL)
				if code := status(s); code != tc.wantOther {
					t.Errorf("after the bound (changing process: %v): %d, want %d", s == one, code, tc.wantOther)
				}
			}
		})
	}
}

// forget drops every key of one receiver and no other (the cache itself is
// tested in internal/ttlcache).
func TestKeyCacheForget(t *testing.T) {
	c := newKeyCache(time.Minute, 10)
	one, other := uuid.New(), uuid.New()
	c.Put([32]byte{1}, store.ReceiverKey{ReceiverID: one, Active: true})
	c.Put([32]byte{2}, store.ReceiverKey{ReceiverID: one, Active: true})
	c.Put([32]byte{3}, store.ReceiverKey{ReceiverID: other, Active: true})
	c.forget(one)
	for sum, want := range map[byte]bool{1: false, 2: false, 3: true} {
		if _, ok := c.Get([32]byte{sum}); ok != want {
			t.Errorf("key %d after forget: cached %v, want %v", sum, ok, want)
		}
	}
}

// TestCredentialCacheWithoutSubscription cuts a server's link to Redis:
// while it cannot hear invalidations it does not serve from its cache (a key
// deleted meanwhile is refused at once), and once subscribed again it starts
// from an empty cache.
func TestCredentialCacheWithoutSubscription(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	opt := testenv.Redis(t)
	proxy, err := fleet.NewProxy(opt.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	// A server of its own whose Redis is behind the proxy.
	popt := *a.rdb.Options()
	popt.Addr = proxy.Addr()
	rdb := redis.NewClient(&popt)
	defer rdb.Close()
	b := *a
	b.rdb = rdb
	s := b.serve()
	creds := s.srv.auth.creds
	waitLive := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); creds.live.Load() != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("subscribed never became %v", want)
			}
		}
	}
	r := s.receiver()
	status := func() int {
		code, _ := s.do("GET", "/v1/receivers/"+r.ID.String(), r.APIKey, nil)
		return code
	}
	if code := status(); code != http.StatusOK || creds.keys.Len() == 0 {
		t.Fatalf("before the cut: %d, %d keys cached", code, creds.keys.Len())
	}

	proxy.Cut()
	waitLive(false)
	if creds.keys.Len() != 0 {
		t.Fatalf("%d keys still cached with the subscription lost", creds.keys.Len())
	}
	if code := status(); code != http.StatusOK {
		t.Fatalf("during the cut, from the database: %d", code)
	}
	// Deleted behind the server's back, and no message can reach it: only
	// not using the cache keeps the key from being accepted.
	a.exec(`DELETE FROM receiver_api_keys WHERE receiver_id = $1`, r.ID)
	if code := status(); code != http.StatusUnauthorized {
		t.Fatalf("a deleted key during the cut: %d, want 401", code)
	}

	proxy.Restore()
	waitLive(true)
	r = s.receiver()
	if code := status(); code != http.StatusOK || creds.keys.Len() != 1 {
		t.Fatalf("after the restore: %d, %d keys cached, want the one just used", code, creds.keys.Len())
	}
}

// TestSilentRedisBypassesCache freezes a private redis-server (SIGSTOP: the
// connection stays open and nothing answers, like a silent partition). The
// subscription is declared down within two liveness periods and the cache
// is bypassed; when the server runs again the process subscribes again.
func TestSilentRedisBypassesCache(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, MaxRetries: -1})
	defer rdb.Close()

	c := newCredentials()
	c.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.listen(ctx, rdb) }()
	defer func() { cancel(); <-done }()
	waitLive := func(want bool, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for c.live.Load() != want {
			if time.Since(start) > within {
				t.Fatalf("subscribed still %v after %s", !want, within)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitLive(true, 10*time.Second)
	c.keys.Put([32]byte{1}, store.ReceiverKey{ReceiverID: uuid.New(), Active: true})

	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	took := waitLive(false, 4*livenessPing)
	t.Logf("a silent Redis was noticed after %s", took)
	if _, ok := c.keys.Get([32]byte{1}); ok {
		t.Fatal("the cache outlived the subscription")
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitLive(true, 10*time.Second)
}
