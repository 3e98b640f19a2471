package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/testenv"
)

// TestAllStartsServesAndStopsOnSIGTERM runs the real binary: `notifyd all`
// migrates a fresh database, answers /healthz and /readyz, serves /metrics
// on the ops listener and not on the API port, and exits 0 promptly on
// SIGTERM.
func TestAllStartsServesAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "notifyd")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dsn := testenv.Database(t)
	redisOpt := testenv.Redis(t)
	addr, opsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "all")
	cmd.Env = append(os.Environ(),
		"NOTIFYD_DATABASE_URL="+dsn,
		fmt.Sprintf("NOTIFYD_REDIS_URL=redis://%s/%d", redisOpt.Addr, redisOpt.DB),
		"NOTIFYD_HTTP_ADDR="+addr,
		"NOTIFYD_ENV=development",
		"NOTIFYD_OPS_ADDR="+opsAddr,
		"NOTIFYD_ADMIN_TOKEN=t",
		"NOTIFYD_LOG_FORMAT=text",
	)
	var logs testenv.SyncBuffer // written by the process while the test reads it
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	defer func() {
		if t.Failed() {
			t.Logf("notifyd output:\n%s", logs.String())
		}
	}()

	getFrom := func(addr, path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path string) (int, string) { return getFrom(addr, path) }
	testenv.WaitFor(t, 30*time.Second, "/healthz to answer 200", func() bool {
		code, _ := get("/healthz")
		return code == http.StatusOK
	})
	// The components start side by side: the API may answer before the ops
	// listener, the worker or the scheduler (which first sets up the
	// operator receiver) is up. A SIGTERM in the middle of start-up is not
	// what this test is about; wait until each has said it started.
	testenv.WaitFor(t, 30*time.Second, "every component to start", func() bool {
		l := logs.String()
		return strings.Contains(l, "ops endpoints listening") && strings.Contains(l, "worker started") &&
			strings.Contains(l, "scheduler started")
	})
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusNotFound || strings.Contains(body, "notifyd_") {
		t.Errorf("/metrics on the API port: %d, want 404", code)
	}
	if code, body := getFrom(opsAddr, "/metrics"); code != http.StatusOK || !strings.Contains(body, "notifyd_") {
		t.Fatalf("/metrics on the ops port: %d", code)
	}
	if code, body := getFrom(opsAddr, "/readyz"); code != http.StatusOK || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("/readyz on the ops port: %d %s", code, body)
	}

	start := time.Now()
	if err := terminate(t, cmd, 20*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	for _, want := range []string{"worker stopped", "api stopped", "scheduler stopped"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// Not parallel: cases set environment variables.
func TestCommandLine(t *testing.T) {
	cases := []struct {
		args     []string
		env      map[string]string
		code     int
		contains string
	}{
		{nil, nil, 2, "Usage"},
		{[]string{"version"}, nil, 0, "notifyd"},
		{[]string{"bogus"}, nil, 2, "unknown command"},
		{[]string{"worker", "-retry-base", "soon"}, nil, 2, "NOTIFYD_RETRY_BASE"},
		{[]string{"migrate", "-retry-base", "1s"}, nil, 2, "notifyd migrate: flag provided but not defined: -retry-base"},
		{[]string{"worker"}, map[string]string{"NOTIFYD_ALLOW_PRIVATE_TARGETS": "10.0.0.0/33"}, 2, "NOTIFYD_ALLOW_PRIVATE_TARGETS"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			if code := run(context.Background(), tc.args, &out, &out); code != tc.code || !strings.Contains(out.String(), tc.contains) {
				t.Fatalf("code %d, output %q; want %d and %q", code, out.String(), tc.code, tc.contains)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCommandFlags: each command's -h (on stdout, exit 0) lists its own
// flags with their types; a flag of another command is a usage error,
// printed once with where to look.
func TestCommandFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args      []string
		code      int
		stdout    []string
		stderr    string
		notStdout []string
	}{
		{[]string{"worker", "-h"}, 0, []string{"usage: notifyd worker [flags]", "-worker-concurrency int", "-delivery-timeout duration"},
			"", []string{"-http-addr", "-no-migrate"}},
		{[]string{"all", "-h"}, 0, []string{"-no-migrate\n", "-http-addr address", "-worker-concurrency int"}, "", []string{"-no-migrate all"}},
		{[]string{"relay", "-h"}, 0, []string{"-outbox-database-url URL", "-ops-addr address"}, "", []string{"-http-addr"}},
		// The relay has no API port: only its ops listener (TestRelayCommand).
		{[]string{"relay", "-http-addr", ":8080"}, 2, nil, "notifyd relay: flag provided but not defined: -http-addr\n(notifyd relay -h lists its flags)\n", nil},
		{[]string{"migrate", "-worker-concurrency", "5"}, 2, nil, "notifyd migrate: flag provided but not defined: -worker-concurrency\n", nil},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, &stdout, &stderr)
		if code != tt.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", tt.args, code, tt.code, stdout.String(), stderr.String())
		}
		for _, w := range tt.stdout {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%v: stdout lacks %q:\n%s", tt.args, w, stdout.String())
			}
		}
		for _, n := range tt.notStdout {
			if strings.Contains(stdout.String(), n) {
				t.Errorf("%v: stdout has %q:\n%s", tt.args, n, stdout.String())
			}
		}
		if tt.stderr != "" && !strings.HasPrefix(stderr.String(), tt.stderr) || strings.Count(stderr.String(), "flag provided") > 1 {
			t.Errorf("%v: stderr %q, want it to start with %q, once", tt.args, stderr.String(), tt.stderr)
		}
	}
}
