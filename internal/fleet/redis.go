package fleet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoRedisServer: redis-server is not installed.
var ErrNoRedisServer = fmt.Errorf("redis-server is not installed")

// Redis is a redis-server of the caller's own on a free loopback port, in
// its own directory, so that it can be killed and restarted without
// touching a shared Redis.
type Redis struct {
	Port int
	Dir  string
	// AOF turns on appendonly (appendfsync everysec) in Dir.
	AOF bool
	// Extra arguments for redis-server (cluster mode, for one).
	Extra  []string
	Proc   *Proc
	logDir string
	runs   int
}

// NewRedis prepares (does not start) a server logging under logDir.
func NewRedis(logDir string, aof bool) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNoRedisServer
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(logDir, "redis-data-")
	if err != nil {
		return nil, fmt.Errorf("redis dir: %w", err)
	}
	return &Redis{Port: port, Dir: dir, AOF: aof, logDir: logDir}, nil
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// Start runs the server (as a replica of replicaOf unless it is "") and
// waits until it answers.
func (r *Redis) Start(replicaOf string) error {
	r.runs++
	aof := "no"
	if r.AOF {
		aof = "yes"
	}
	args := []string{"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.Dir,
		"--save", "", "--appendonly", aof, "--appendfsync", "everysec", "--daemonize", "no",
		// The first full sync starts at once instead of after 5 s.
		"--repl-diskless-sync-delay", "0"}
	if replicaOf != "" {
		host, port, _ := splitHostPort(replicaOf)
		args = append(args, "--replicaof", host, port)
	}
	args = append(args, r.Extra...)
	p, err := Start(r.logDir, fmt.Sprintf("redis-%d-%d", r.Port, r.runs), nil, "redis-server", args...)
	if err != nil {
		return err
	}
	r.Proc = p
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	err = WaitFor("redis-server on "+r.Addr(), 10*time.Second, func() bool {
		return !p.Running() || c.Ping(context.Background()).Err() == nil
	})
	if err == nil && !p.Running() {
		err = fmt.Errorf("redis-server on %s exited: %v\n%s", r.Addr(), p.WaitErr(), p.Log())
	}
	return err
}

// Kill SIGKILLs the server: nothing is saved beyond what its AOF holds.
func (r *Redis) Kill() error {
	if err := r.Proc.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !r.Proc.Wait(10 * time.Second) {
		return fmt.Errorf("redis-server on %s did not die", r.Addr())
	}
	return nil
}

// Wipe deletes the server's data files (it must not be running), so that
// the next Start begins empty even with AOF on.
func (r *Redis) Wipe() error {
	entries, err := os.ReadDir(r.Dir)
	if err != nil {
		return fmt.Errorf("wipe %s: %w", r.Dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(r.Dir, e.Name())); err != nil {
			return fmt.Errorf("wipe %s: %w", r.Dir, err)
		}
	}
	return nil
}

// RestartEmpty kills the server, deletes its data and starts a fresh one on
// the same port (as a replica of replicaOf unless "").
func (r *Redis) RestartEmpty(replicaOf string) error {
	if err := r.Kill(); err != nil {
		return err
	}
	if err := r.Wipe(); err != nil {
		return err
	}
	return r.Start(replicaOf)
}

func splitHostPort(addr string) (host, port string, err error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("no port in %q", addr)
}
