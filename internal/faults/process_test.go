package faults

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/fleet"
)

// proc is a fleet.Proc tied to a test: killed, if still running, when the
// test ends, and its log printed if the test failed.
type proc struct{ *fleet.Proc }

// startProc runs bin with exactly env (plus PATH and HOME), its log under the
// test's temporary directory.
func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p, err := fleet.Start(t.TempDir(), name, env, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Log(p.LogDigest())
		}
	})
	return &proc{p}
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := fleet.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// waitHTTP polls url until it answers 200, failing the test if p exits or
// timeout passes.
func waitHTTP(t *testing.T, p *proc, url string, timeout time.Duration) {
	t.Helper()
	if err := fleet.WaitHTTP(p.Proc, url, timeout); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if err := fleet.WaitFor(what, timeout, cond); err != nil {
		t.Fatal(err)
	}
}

// redisServer is a redis-server of the test's own (no persistence), so that
// it can be killed and restarted without touching the machine's shared Redis.
type redisServer struct{ *fleet.Redis }

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	r, err := fleet.NewRedis(t.TempDir(), false)
	if errors.Is(err, fleet.ErrNoRedisServer) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, r)
	if err := r.Start(""); err != nil {
		t.Fatal(err)
	}
	return &redisServer{r}
}

// killOnCleanup kills r's current process when the test ends.
func killOnCleanup(t *testing.T, r *fleet.Redis) {
	t.Cleanup(func() {
		if r.Proc != nil {
			r.Proc.Kill()
			if t.Failed() {
				t.Log(r.Proc.LogDigest())
			}
		}
	})
}

func (r *redisServer) addr() string { return r.Addr() }

// restartEmpty kills the server with SIGKILL (nothing is saved: persistence
// is off) and starts a fresh one on the same port.
func (r *redisServer) restartEmpty(t *testing.T) {
	t.Helper()
	if err := r.RestartEmpty(""); err != nil {
		t.Fatal(err)
	}
}

// exitedBySignal reports whether the process died of sig.
func exitedBySignal(p *proc, sig syscall.Signal) bool { return p.ExitedBySignal(sig) }
