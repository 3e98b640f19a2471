package main

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/notifyd/notifyd/internal/fleet"
)

// nemesis performs the planned faults one after another, each healed (the
// process restarted, the link restored, the receiver back) before the next.
type nemesis struct {
	c        *cluster
	sentinel *fleet.Sentinel
	proxy    *fleet.Proxy
	rs       *fleet.Receivers
	logf     func(format string, args ...any)

	mu     sync.Mutex
	done   map[string]int // kind → faults performed
	errors []string       // faults the harness could not perform or heal
	loss   []Window       // Redis faults, from start to heal plus lossTail
}

// lossTail extends a Redis fault's window past its heal: workers reach the
// new or restarted master up to a few seconds after the fault is healed
// (Sentinel's announcement, go-redis's reconnect), and deliveries whose
// slots Redis lost run for up to the delivery timeout (2 s) after that. A
// 30-minute soak saw overshoots end up to 5.2 s after the heal.
const lossTail = 10 * time.Second

// losesRedisData is whether a fault kind can lose Redis's data.
func losesRedisData(kind string) bool {
	return kind == FRedisEmpty || kind == FRedisAOF || kind == FRedisKill || kind == FRedisFailover
}

// run performs plan's faults at their offsets from start until ctx ends.
func (n *nemesis) run(ctx context.Context, start time.Time, plan []Fault) {
	for _, f := range plan {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(f.At))):
		}
		began := time.Now()
		detail, err := n.perform(f)
		n.mu.Lock()
		n.done[f.Kind]++
		if losesRedisData(f.Kind) {
			n.loss = append(n.loss, Window{From: began, To: time.Now().Add(lossTail)})
		}
		if err != nil {
			n.errors = append(n.errors, fmt.Sprintf("%s: %v", f, err))
		}
		n.mu.Unlock()
		if err != nil {
			n.logf("fault %s FAILED after %s: %v", f, time.Since(began).Round(time.Millisecond), err)
		} else {
			n.logf("fault %s done in %s %s", f, time.Since(began).Round(time.Millisecond), detail)
		}
	}
}

// counts is the faults performed so far, by kind.
func (n *nemesis) counts() (map[string]int, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out, total := make(map[string]int, len(n.done)), 0
	for k, v := range n.done {
		out[k] = v
		total += v
	}
	return out, total
}

func (n *nemesis) perform(f Fault) (string, error) {
	switch f.Kind {
	case FKillWorker:
		return "", n.bounce("worker", f, syscall.SIGKILL)
	case FTermWorker:
		return "", n.bounce("worker", f, syscall.SIGTERM)
	case FKillAPI:
		return "", n.bounce("api", f, syscall.SIGKILL)
	case FTermAPI:
		return "", n.bounce("api", f, syscall.SIGTERM)
	case FKillScheduler:
		return "", n.bounce("scheduler", f, syscall.SIGKILL)
	case FTermScheduler:
		return "", n.bounce("scheduler", f, syscall.SIGTERM)
	case FKillRelay:
		return "", n.bounce("relay", f, syscall.SIGKILL)
	case FRedisEmpty, FRedisAOF:
		return "", n.restartMaster(f)
	case FRedisKill:
		took, err := n.sentinel.KillMaster()
		return fmt.Sprintf("(promoted after %s)", took.Round(time.Millisecond)), err
	case FRedisFailover:
		took, err := n.sentinel.Failover()
		return fmt.Sprintf("(promoted after %s)", took.Round(time.Millisecond)), err
	case FPostgresCut:
		n.proxy.Cut()
		time.Sleep(f.Hold)
		n.proxy.Restore()
		return "", nil
	case FReceiverDown:
		n.rs.Down(f.Target)
		time.Sleep(f.Hold)
		return "", n.rs.Up(f.Target)
	}
	return "", fmt.Errorf("unknown fault kind %q", f.Kind)
}

// bounce signals a process, waits for it to exit, holds, and starts it again
// on the same address, as a supervisor would.
func (n *nemesis) bounce(role string, f Fault, sig syscall.Signal) error {
	m := n.c.member(role, f.Target)
	if err := m.proc.Signal(sig); err != nil {
		return err
	}
	// SIGTERM: shutdown gives deliveries NOTIFYD_SHUTDOWN_TIMEOUT (5 s).
	if !m.proc.Wait(30 * time.Second) {
		m.proc.Kill()
		return fmt.Errorf("%s-%d did not exit within 30 s of %s", role, m.idx, sig)
	}
	if sig == syscall.SIGTERM && m.proc.ExitCode() != 0 {
		return fmt.Errorf("%s-%d exited %d on SIGTERM", role, m.idx, m.proc.ExitCode())
	}
	time.Sleep(f.Hold)
	return n.c.start(m)
}

// restartMaster SIGKILLs the Redis master and starts it again at once on its
// port, before the sentinels' down-after (1 s) elapses: with its AOF
// (FRedisAOF: at most about a second of writes lost) or wiped
// (FRedisEmpty: Redis restarts empty, and its replica resyncs to empty).
func (n *nemesis) restartMaster(f Fault) error {
	m := n.sentinel.Master()
	if err := m.Kill(); err != nil {
		return err
	}
	if f.Kind == FRedisEmpty {
		if err := m.Wipe(); err != nil {
			return err
		}
	}
	return m.Start("")
}
