package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testenv"
)

// TestSIGTERMWhileStartingIsACleanStop: `notifyd all` stopped at any point
// of its start-up (migrating, opening Postgres and Redis, setting up the
// operator receiver, starting its components) exits 0 and does not log a
// failure: an orchestrator that stops a process it has just started (a
// rolling update, a scale-down) is not told it failed.
func TestSIGTERMWhileStartingIsACleanStop(t *testing.T) {
	t.Parallel()
	settings := devSettings(t, testenv.Database(t), testenv.Redis(t))
	settings["NOTIFYD_OPS_ADDR"] = freeAddr(t)
	bin := notifydBinary(t)
	// After "notifyd starting" (the signal handler is installed by then):
	// at once, and later into start-up.
	for _, after := range []time.Duration{0, 20 * time.Millisecond, 60 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond} {
		var logs testenv.SyncBuffer
		cmd := exec.Command(bin, "all")
		cmd.Env = withEnv(settings)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 30*time.Second, "notifyd starting", func() bool {
			return strings.Contains(logs.String(), "notifyd starting")
		})
		time.Sleep(after)
		if err := terminate(t, cmd, 20*time.Second); err != nil || strings.Contains(logs.String(), "notifyd failed") {
			t.Errorf("SIGTERM %v after start: %v, want exit 0 and no failure logged; log:\n%s", after, err, logs.String())
		}
	}
}

// terminate sends cmd SIGTERM and returns how it exited; one still running
// after within is killed and fails the test.
func terminate(t *testing.T, cmd *exec.Cmd, within time.Duration) error {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		cmd.Process.Kill()
		t.Fatalf("notifyd did not exit within %s of SIGTERM", within)
		return nil
	}
}
