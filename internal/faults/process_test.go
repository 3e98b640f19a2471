package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// proc is a child process whose output goes to a log file under the test's
// temporary directory; the log is printed if the test fails.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// startProc runs bin with exactly env (plus PATH and HOME) and kills it, if
// still running, when the test ends.
func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.dumpLog(t)
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: send %s: %v", p.name, sig, err)
	}
}

// wait waits up to timeout for the process to exit and reports whether it did.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// exitCode is the exit status once the process has exited (-1 if killed by a signal).
func (p *proc) exitCode() int { return p.cmd.ProcessState.ExitCode() }

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// dumpLog prints the errors and warnings (at most 60) and the last 60 lines.
func (p *proc) dumpLog(t *testing.T) {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	var important []string
	for _, l := range lines {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") || strings.Contains(l, "panic") {
			important = append(important, l)
		}
	}
	if len(important) > 60 {
		important = append(important[:30], append([]string{"…"}, important[len(important)-30:]...)...)
	}
	tail := lines[max(0, len(lines)-60):]
	t.Logf("==== %s log (%d lines): errors and warnings ====\n%s\n==== %s log: last %d lines ====\n%s",
		p.name, len(lines), strings.Join(important, "\n"), p.name, len(tail), strings.Join(tail, "\n"))
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitHTTP polls url until it answers 200, failing the test if p exits or
// timeout passes.
func waitHTTP(t *testing.T, p *proc, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if !p.running() {
			t.Fatalf("%s exited before it was ready (%v)", p.name, p.waitErr)
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %s not ready after %s", p.name, url, timeout)
}

// redisServer is a redis-server of the test's own, so that it can be killed
// and restarted without touching the machine's shared Redis.
type redisServer struct {
	port int
	proc *proc
	runs int
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	r := &redisServer{port: freePort(t)}
	r.start(t)
	return r
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisServer) start(t *testing.T) {
	t.Helper()
	r.runs++
	r.proc = startProc(t, fmt.Sprintf("redis-%d", r.runs), nil, "redis-server",
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	c := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Ping(context.Background()).Err(); err == nil {
			return
		} else if !r.proc.running() || time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not start: %v\n%s", r.addr(), err, r.proc.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restartEmpty kills the server with SIGKILL (nothing is saved: persistence
// is off) and starts a fresh one on the same port.
func (r *redisServer) restartEmpty(t *testing.T) {
	t.Helper()
	r.proc.signal(t, syscall.SIGKILL)
	if !r.proc.wait(10 * time.Second) {
		t.Fatal("redis-server did not die")
	}
	r.start(t)
}

// exitedBySignal reports whether the process died of sig.
func exitedBySignal(p *proc, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(p.waitErr, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
