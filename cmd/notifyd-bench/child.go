package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The bench runs notifyd, the no-op Asynq consumer and the receiver as
// separate processes (this binary re-executed with "child <role>"), so that
// the CPU split measures each one apart from the load generator.
//
// Protocol: the child prints one line "ready <json>" on stdout once it
// serves, and exits when its stdin is closed (or on SIGTERM).

// childEnv marks a re-executed child, so that a test binary (whose own flags
// would choke on "child") can dispatch to childMain in TestMain.
const childEnv = "NOTIFYD_BENCH_CHILD"

// child is a running child process.
type child struct {
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	ready map[string]string
	log   string
	done  chan error
	// stats is what the child printed on its "stats" line at exit; read it
	// after stop.
	stats     map[string]float64
	stdoutEOF chan struct{}
}

func startChild(ctx context.Context, logDir, role string, env []string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	logPath := filepath.Join(logDir, role+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	defer logFile.Close()
	cmd := exec.Command(exe, append([]string{"child", role}, args...)...)
	cmd.Env = append(append(os.Environ(), env...), childEnv+"=1")
	cmd.Stderr = logFile
	// Children die with the bench, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", role, err)
	}
	c := &child{role: role, cmd: cmd, stdin: stdin, log: logPath, done: make(chan error, 1), stdoutEOF: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		defer close(c.stdoutEOF)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			switch line := sc.Text(); {
			case strings.HasPrefix(line, "ready "):
				lines <- strings.TrimPrefix(line, "ready ")
			case strings.HasPrefix(line, "stats "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "stats ")), &c.stats)
			}
		}
		close(lines)
	}()
	// Wait only once stdout is read to its end: Wait closes the pipe.
	go func() { <-c.stdoutEOF; c.done <- cmd.Wait() }()
	select {
	case line, ok := <-lines:
		if !ok {
			err := <-c.done
			return nil, fmt.Errorf("%s exited before it was ready (%v); log: %s%s", role, err, logPath, tail(logPath))
		}
		if err := json.Unmarshal([]byte(line), &c.ready); err != nil {
			c.stop()
			return nil, fmt.Errorf("%s: bad ready line %q: %w", role, line, err)
		}
		return c, nil
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("%s not ready after 30 s; log: %s%s", role, logPath, tail(logPath))
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop closes stdin (graceful shutdown) and waits; it kills the child after
// 30 s.
func (c *child) stop() error {
	c.stdin.Close()
	select {
	case err := <-c.done:
		c.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		return fmt.Errorf("%s did not stop within 30 s; killed", c.role)
	}
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\n    " + strings.Join(lines, "\n    ")
}

// childMain runs a child role; args start with the role.
func childMain(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "notifyd-bench child: missing role")
		return 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Stop when the parent closes our stdin or goes away.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var err error
	switch args[0] {
	case "receiver":
		err = runReceiver(ctx, args[1:])
	case "notifyd":
		err = runNotifyd(ctx, args[1:])
	case "noop":
		err = runNoop(ctx, args[1:])
	default:
		err = fmt.Errorf("unknown role %q", args[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "notifyd-bench child %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func ready(v map[string]string) {
	b, _ := json.Marshal(v)
	fmt.Printf("ready %s\n", b)
}

// serveUntil serves h on a loopback listener until ctx ends.
func serveUntil(ctx context.Context, ln net.Listener, h http.Handler) {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		hs.Close()
	}()
	_ = hs.Serve(ln)
}

func (b *bench) roleMap() map[int]string {
	b.rolesMu.Lock()
	defer b.rolesMu.Unlock()
	return maps.Clone(b.roles)
}

// startChild starts a child and registers its pid for the CPU split.
func (b *bench) startChild(ctx context.Context, role string, args ...string) (*child, error) {
	c, err := startChild(ctx, b.logDir, role, b.childEnv, args...)
	if err != nil {
		return nil, err
	}
	category := map[string]string{"receiver": cpuReceiver, "notifyd": cpuNotifyd, "noop": cpuNotifyd}[role]
	b.rolesMu.Lock()
	b.roles[c.pid()] = category
	b.rolesMu.Unlock()
	return c, nil
}

func (b *bench) stopChild(c *child) {
	if c == nil {
		return
	}
	if err := c.stop(); err != nil {
		var ee interface{ ExitCode() int }
		if !errors.As(err, &ee) {
			b.prog.note(fmt.Sprintf("%s: %v", c.role, err))
		}
	}
}

// consumerArgs are the flags of a child that consumes the bench's queue
// (consumerFlags reads them).
func (b *bench) consumerArgs(extra ...string) []string {
	return append([]string{
		"-redis-addr", b.cfg.redisAddr, "-redis-db", fmt.Sprint(b.cfg.redisDB), "-concurrency", fmt.Sprint(b.cfg.concurrency),
	}, extra...)
}

// notifydArgs are the flags of a notifyd child.
func (b *bench) notifydArgs(dbURL string, extra ...string) []string {
	return b.consumerArgs(append([]string{"-database-url", dbURL}, extra...)...)
}
