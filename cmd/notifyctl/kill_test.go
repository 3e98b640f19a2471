package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets a test run notifyctl as a real process: the test binary
// re-executed with NOTIFYCTL_RUN_MAIN=1 is notifyctl.
func TestMain(m *testing.M) {
	if os.Getenv("NOTIFYCTL_RUN_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestReconcileSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	s, r, ids, ckpt := reconcileSetup(t, 10)

	// Page size 3: pages [0 1 2] [3 4 5] …; the process is killed while the
	// handler holds notification 4, after 3 was handled but before the page
	// it is on was checkpointed.
	const block = 5
	h := newBlockingHandler(t, r, block)
	cmd := exec.Command(os.Args[0], "--url", s.URL, "--token", r.APIKey, "reconcile", "--checkpoint", ckpt,
		"--handler-url", h.URL, "--page-size", "3", "--signing-secret-file", secretFile(t, r))
	cmd.Env = append(os.Environ(), "NOTIFYCTL_RUN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.blocked:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the handler never saw notification %d; stderr:\n%s", block, stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if got := h.ids(); !slices.Equal(got, ids[:block]) {
		t.Fatalf("killed run handed over %v, want %v", got, ids[:block])
	}

	ck := readCheckpoint(t, ckpt)
	if ck.ID != ids[2] || len(ck.Seen) != 3 {
		t.Fatalf("checkpoint after SIGKILL at %s with %d seen, want at %s (end of the first page) with 3", ck.ID, len(ck.Seen), ids[2])
	}

	// The rerun starts after the checkpoint: notification 3, handled before
	// the kill but not checkpointed, comes again (at least once); nothing is
	// skipped.
	healthy := newLocalHandler(t, r, 0)
	code, _, errOut := reconcile(t, s, r, ckpt, "--handler-url", healthy.URL, "--page-size", "3")
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s", code, errOut)
	}
	if got := healthy.ids(); !slices.Equal(got, ids[3:]) {
		t.Fatalf("rerun handled %v, want %v", got, ids[3:])
	}
}

func TestReconcileInterrupted(t *testing.T) {
	t.Parallel()
	s, r, ids, ckpt := reconcileSetup(t, 6)

	// SIGINT while the handler holds notification 3: the run stops, keeping
	// 0..2 in the checkpoint although their page is not finished.
	h := newBlockingHandler(t, r, 4)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-h.blocked
		cancel()
	}()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"--url", s.URL, "--token", r.APIKey, "reconcile", "--checkpoint", ckpt, "--handler-url", h.URL,
		"--signing-secret-file", secretFile(t, r)}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "context canceled") || !strings.Contains(errOut.String(), "reconcile: stopped: 3 handled") {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	if ck := readCheckpoint(t, ckpt); ck.ID != ids[2] {
		t.Fatalf("checkpoint at %s, want %s", ck.ID, ids[2])
	}
	healthy := newLocalHandler(t, r, 0)
	if code, _, errOut := reconcile(t, s, r, ckpt, "--handler-url", healthy.URL); code != 0 || !slices.Equal(healthy.ids(), ids[3:]) {
		t.Fatalf("rerun: exit %d, handled %v, want %v\n%s", code, healthy.ids(), ids[3:], errOut)
	}
}
