package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testenv"
)

// readmeQuickStart returns the shell blocks of README's "To run notifyd
// yourself" section: starting notifyd, then trying it.
func readmeQuickStart(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "To run notifyd yourself")
	if !ok {
		t.Fatal(`README.md has no "To run notifyd yourself" section`)
	}
	var blocks []string
	for len(blocks) < 2 {
		var block string
		if _, rest, ok = strings.Cut(rest, "```sh\n"); ok {
			block, rest, ok = strings.Cut(rest, "```\n")
		}
		if !ok {
			t.Fatalf("README.md: %d shell blocks after \"To run notifyd yourself\", want 2", len(blocks))
		}
		blocks = append(blocks, block)
	}
	return strings.Join(blocks, "")
}

// TestReadmeQuickStart runs README's quick start as a new user pastes it
// into a fresh shell (no NOTIFYD_* variables), with the real binaries: it
// builds them, starts `notifyd all` in development mode, creates a receiver
// on loopback, starts the example merchant with its signing secret and
// sends it a notification, which the merchant must verify. Only what must
// differ on a shared machine is replaced: the database, the ports and the
// places files are written; Redis is the test's own index.
func TestReadmeQuickStart(t *testing.T) {
	t.Parallel()
	script := readmeQuickStart(t)
	dir := t.TempDir()
	dsn := testenv.Database(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	redisOpt := testenv.Redis(t)
	apiAddr, opsAddr, merchantAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	for _, r := range []struct{ old, new string }{
		{"bin/", dir + "/bin/"},
		{"createdb -h 127.0.0.1 -U postgres notifyd", "createdb -h 127.0.0.1 -U postgres " + strings.TrimPrefix(u.Path, "/")},
		{"postgres://postgres@127.0.0.1:5432/notifyd", dsn},
		{"http://127.0.0.1:8080", "http://" + apiAddr},
		{"127.0.0.1:9001", merchantAddr},
		{"PORT=9001", "PORT=" + merchantAddr[strings.LastIndexByte(merchantAddr, ':')+1:]},
		{"receiver.json", dir + "/receiver.json"},
	} {
		if !strings.Contains(script, r.old) {
			t.Fatalf("README's quick start no longer contains %q: update this test with it", r.old)
		}
		script = strings.ReplaceAll(script, r.old, r.new)
	}

	// A fresh shell: none of notifyd's variables but those the machine
	// must differ in (the README leaves them at their defaults).
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFYD_") {
			env = append(env, kv)
		}
	}
	env = append(env, "NOTIFYD_HTTP_ADDR="+apiAddr, "NOTIFYD_OPS_ADDR="+opsAddr,
		fmt.Sprintf("NOTIFYD_REDIS_URL=redis://%s/%d", redisOpt.Addr, redisOpt.DB))

	// Output goes to a file, not a pipe: the shell leaves notifyd and the
	// merchant running in the background, and a pipe would stay open.
	out, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", script)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = "../..", env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	output := func() string {
		b, _ := os.ReadFile(out.Name())
		return string(b)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Stops what the script left running (notifyd, the merchant): they
	// are in its process group.
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		time.Sleep(time.Second)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("quick start output:\n%s", output())
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the quick start failed: %v", err)
	}

	// The merchant prints a callback only once its signature verified.
	const delivered = "trade.paid (callback)"
	for deadline := time.Now().Add(time.Minute); !strings.Contains(output(), delivered); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the merchant never logged %q", delivered)
		}
	}
	got := output()
	for _, want := range []string{
		`"status":"pending"`, // the send's answer
		`"idempotency_key":"order-1001"`,
		"NOTIFYD_ALLOW_PRIVATE_TARGETS is not set: development lets callbacks reach loopback addresses", // the warning
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the quick start's output lacks %q", want)
		}
	}
}
