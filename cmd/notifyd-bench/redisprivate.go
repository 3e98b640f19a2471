package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/fleet"
)

// privateRedisAddr is the --redis-addr value that makes the bench start a
// redis-server of its own.
const privateRedisAddr = "private"

// privateRedis is a redis-server only the bench talks to, so that the
// Redis figures per notification (commands, bytes, CPU, memory) count the
// bench's traffic and nothing else: on the shared server, other tests'
// commands would land in the same INFO counters and redis-server process.
//
// It is configured as README recommends for production (AOF with fsync
// every second, noeviction), on a free loopback port, in a directory under
// the bench's log directory; it dies with the bench (Pdeathsig).
type privateRedis struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func startPrivateRedis(ctx context.Context, dir string) (*privateRedis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server is not installed: install it or pass --redis-addr host:port")
	}
	port, err := fleet.FreePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "redis-data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, fmt.Errorf("private redis: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		return nil, fmt.Errorf("private redis: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", data,
		"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
		"--daemonize", "no")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("private redis: %w", err)
	}
	r := &privateRedis{addr: "127.0.0.1:" + strconv.Itoa(port), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.done) }()
	c := redis.NewClient(&redis.Options{Addr: r.addr})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c.Ping(ctx).Err() == nil {
			return r, nil
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("private redis on %s exited; log: %s%s", r.addr, logFile.Name(), tail(logFile.Name()))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.stop()
			return nil, fmt.Errorf("private redis on %s not answering after 10 s", r.addr)
		}
	}
}

func (r *privateRedis) pid() int { return r.cmd.Process.Pid }

// stop shuts the server down (SIGTERM), killing it after 10 s.
func (r *privateRedis) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}
