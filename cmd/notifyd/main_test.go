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
	"syscall"
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
	var logs bytes.Buffer
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("/healthz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz never answered 200")
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("notifyd did not exit within 20 s of SIGTERM")
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
		{[]string{"migrate", "-retry-base", "soon"}, nil, 2, "NOTIFYD_RETRY_BASE"},
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
