package fleet

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Proc is a child process whose output goes to a log file.
type Proc struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// Start runs bin with exactly env (plus PATH and HOME), its output in a new
// log file under logDir named after name.
func Start(logDir, name string, env []string, bin string, args ...string) (*Proc, error) {
	f, err := os.CreateTemp(logDir, name+"-*.log")
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, LogPath: f.Name(), cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: send %s: %w", p.Name, sig, err)
	}
	return nil
}

// Kill SIGKILLs the process if it still runs and waits for it to exit.
func (p *Proc) Kill() {
	if p.Running() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Wait waits up to timeout for the process to exit and reports whether it did.
func (p *Proc) Wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// WaitErr is what waiting for the process returned, once it has exited.
func (p *Proc) WaitErr() error {
	if p.Running() {
		return nil
	}
	return p.waitErr
}

// ExitCode is the exit status once the process has exited (-1 if killed by a signal).
func (p *Proc) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

// ExitedBySignal reports whether the process died of sig.
func (p *Proc) ExitedBySignal(sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(p.WaitErr(), &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// Log is the process's output so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogDigest is the log's errors and warnings (at most 60) and its last 60
// lines, for a failure report.
func (p *Proc) LogDigest() string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
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
	return fmt.Sprintf("==== %s log (%d lines): errors and warnings ====\n%s\n==== %s log: last %d lines ====\n%s",
		p.Name, len(lines), strings.Join(important, "\n"), p.Name, len(tail), strings.Join(tail, "\n"))
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitHTTP polls url until it answers 200; it fails early if p exits.
func WaitHTTP(p *Proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if !p.Running() {
			return fmt.Errorf("%s exited before it was ready (%v)", p.Name, p.WaitErr())
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s not ready after %s", p.Name, url, timeout)
}

// ErrTimeout is returned by WaitFor when the condition did not hold in time.
var ErrTimeout = errors.New("timed out")

// WaitFor polls cond every 20 ms until it holds or timeout passes.
func WaitFor(what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s waiting for %s", ErrTimeout, timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
