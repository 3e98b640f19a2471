package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query/webhook"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// notifydBinary builds the real binary once for the tests of this file.
func notifydBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "notifyd-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "notifyd")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// env is the process environment plus settings.
func withEnv(settings map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range settings {
		env = append(env, k+"="+v)
	}
	return env
}

func newSecretKey(t *testing.T) (b64 string, raw []byte) {
	raw = make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw), raw
}

// TestProductionRefusesUnsafeSettings runs the real binary in production
// mode (NOTIFYD_ENV unset: the default) with one unsafe setting at a time:
// it exits 2 before connecting to anything, naming the setting.
func TestProductionRefusesUnsafeSettings(t *testing.T) {
	t.Parallel()
	bin := notifydBinary(t)
	key, _ := newSecretKey(t)
	safe := map[string]string{
		"NOTIFYD_ADMIN_TOKEN": strings.Repeat("a", 32),
		"NOTIFYD_SECRET_KEYS": "k1:" + key,
		"NOTIFYD_TASK_KEY":    "t1:" + key,
		// Nothing listens there: a refusal must come before any connection.
		"NOTIFYD_REDIS_URL":    "redis://notifyd:pw@127.0.0.1:1/0",
		"NOTIFYD_DATABASE_URL": "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1",
	}
	cases := []struct {
		name    string
		change  map[string]string
		setting string
	}{
		{"short admin token", map[string]string{"NOTIFYD_ADMIN_TOKEN": "short-admin-token"}, "NOTIFYD_ADMIN_TOKEN"},
		{"no secret keys", map[string]string{"NOTIFYD_SECRET_KEYS": ""}, "NOTIFYD_SECRET_KEYS"},
		{"no task key", map[string]string{"NOTIFYD_TASK_KEY": ""}, "NOTIFYD_TASK_KEY"},
		{"private targets", map[string]string{"NOTIFYD_ALLOW_PRIVATE_TARGETS": "true"}, "NOTIFYD_ALLOW_PRIVATE_TARGETS"},
		{"redis without password", map[string]string{"NOTIFYD_REDIS_URL": "redis://127.0.0.1:1/0"}, "NOTIFYD_REDIS_URL"},
		{"explicit production", map[string]string{"NOTIFYD_ENV": "production", "NOTIFYD_ALLOW_PRIVATE_TARGETS": "true"}, "NOTIFYD_ALLOW_PRIVATE_TARGETS"},
	}
	for _, tc := range cases {
		for _, command := range []string{"all", "worker", "api"} {
			t.Run(tc.name+"/"+command, func(t *testing.T) {
				settings := map[string]string{}
				for k, v := range safe {
					settings[k] = v
				}
				for k, v := range tc.change {
					settings[k] = v
				}
				cmd := exec.Command(bin, command)
				cmd.Env = withEnv(settings)
				out, err := cmd.CombinedOutput()
				ee, ok := err.(*exec.ExitError)
				if !ok || ee.ExitCode() != 2 {
					t.Fatalf("exit %v, want code 2; output:\n%s", err, out)
				}
				if !strings.Contains(string(out), "refusing to start") || !strings.Contains(string(out), tc.setting) {
					t.Fatalf("output does not name %s:\n%s", tc.setting, out)
				}
				for _, v := range []string{key, "short-admin-token"} {
					if strings.Contains(string(out), v) {
						t.Fatalf("output quotes a secret value:\n%s", out)
					}
				}
			})
		}
	}
}

// devSettings are the settings of a development notifyd on the test's own
// database (dsn) and Redis index (redisOpt), serving on free loopback ports.
func devSettings(t *testing.T, dsn string, redisOpt *redis.Options) map[string]string {
	return map[string]string{
		"NOTIFYD_ENV":                   "development",
		"NOTIFYD_DATABASE_URL":          dsn,
		"NOTIFYD_REDIS_URL":             fmt.Sprintf("redis://%s/%d", redisOpt.Addr, redisOpt.DB),
		"NOTIFYD_HTTP_ADDR":             freeAddr(t),
		"NOTIFYD_ADMIN_TOKEN":           apitest.AdminToken,
		"NOTIFYD_ALLOW_PRIVATE_TARGETS": "true",
		"NOTIFYD_LOG_FORMAT":            "text",
	}
}

// startAll runs `notifyd all` until it answers /readyz; stop ends it.
func startAll(t *testing.T, settings map[string]string) (logs *testenv.SyncBuffer, stop func()) {
	t.Helper()
	return startCommand(t, "all", "http://"+settings["NOTIFYD_HTTP_ADDR"], settings)
}

// startCommand runs `notifyd command` until base answers /readyz (the API
// port, or the ops listener of a process without one); stop ends it.
func startCommand(t *testing.T, command, base string, settings map[string]string) (logs *testenv.SyncBuffer, stop func()) {
	t.Helper()
	if settings["NOTIFYD_OPS_ADDR"] == "" {
		// Not the default 127.0.0.1:9090, which another process may hold.
		settings["NOTIFYD_OPS_ADDR"] = freeAddr(t)
	}
	cmd := exec.Command(notifydBinary(t), command)
	cmd.Env = withEnv(settings)
	logs = &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return logs, stop
			}
		}
		select {
		case <-done:
			t.Fatalf("notifyd exited:\n%s", logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifyd never ready:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// verifyingMerchant is a callback endpoint per receiver path that counts
// only callbacks whose signature verifies with that receiver's secret.
type verifyingMerchant struct {
	*httptest.Server
	mu        sync.Mutex
	verifiers map[string]*webhook.Verifier
	verified  map[string]*atomic.Int64
}

func newVerifyingMerchant(t *testing.T) *verifyingMerchant {
	m := &verifyingMerchant{verifiers: map[string]*webhook.Verifier{}, verified: map[string]*atomic.Int64{}}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		v, n := m.verifiers[r.URL.Path], m.verified[r.URL.Path]
		m.mu.Unlock()
		if v == nil {
			http.Error(w, "unknown", http.StatusNotFound)
			return
		}
		if _, err := v.Verify(r); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		n.Add(1)
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *verifyingMerchant) expect(t *testing.T, path, secret string) {
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.verifiers[path], m.verified[path] = v, new(atomic.Int64)
}

func (m *verifyingMerchant) count(path string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.verified[path].Load()
}

// TestSecretsSealedAtRestAndDeliveriesVerify is the secrets-at-rest attack:
// dump the database and look for signing secrets or key material.
//
//  1. development, no keys: notifyd starts, warning about each unsafe
//     setting; a receiver is created (its secret stored in the clear);
//  2. restarted with NOTIFYD_SECRET_KEYS=k1: the start-up migration seals
//     the legacy secret; a second receiver is created sealed;
//  3. restarted with k2,k1 (not migrating); `notifyd rotate-secret-key` runs while it
//     serves and reseals both with k2, then again and changes nothing;
//  4. deliveries to both receivers verify with the secrets shown at
//     creation, and pg_dump holds no whsec_ value and no key material.
func TestSecretsSealedAtRestAndDeliveriesVerify(t *testing.T) {
	t.Parallel()
	dsn := testenv.Database(t)
	k1, raw1 := newSecretKey(t)
	k2, raw2 := newSecretKey(t)
	settings := devSettings(t, dsn, testenv.Redis(t))
	api := apitest.NewClient(t, "http://"+settings["NOTIFYD_HTTP_ADDR"])
	merchant := newVerifyingMerchant(t)

	logs, stop := startAll(t, settings)
	for _, s := range []string{"NOTIFYD_ADMIN_TOKEN", "NOTIFYD_SECRET_KEYS", "NOTIFYD_ALLOW_PRIVATE_TARGETS", "NOTIFYD_REDIS_URL"} {
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), s) {
			t.Errorf("development start does not warn about %s:\n%s", s, logs)
		}
	}
	legacy := api.CreateReceiver(merchant.URL+"/legacy", nil)
	merchant.expect(t, "/legacy", legacy.SigningSecret)
	stop()
	if stored := storedSecret(t, dsn, legacy.ID); stored != legacy.SigningSecret {
		t.Fatalf("without keys the secret should be stored as is, got %q", stored)
	}

	settings["NOTIFYD_SECRET_KEYS"] = "k1:" + k1
	_, stop = startAll(t, settings)
	if stored := storedSecret(t, dsn, legacy.ID); !strings.HasPrefix(stored, "nfysec1:k1:") {
		t.Fatalf("start-up migration left the legacy secret as %q", stored)
	}
	sealed := api.CreateReceiver(merchant.URL+"/sealed", nil)
	merchant.expect(t, "/sealed", sealed.SigningSecret)
	stop()

	// Every process gets the new key first; without migrating on start
	// (as an API or worker does) nothing is resealed until the command runs.
	settings["NOTIFYD_SECRET_KEYS"] = "k2:" + k2 + ",k1:" + k1
	settings["NOTIFYD_NO_MIGRATE"] = "true"
	startAll(t, settings)
	for run, want := range []string{"done: 2 receivers, 2 resealed", "done: 2 receivers, 0 resealed"} {
		cmd := exec.Command(notifydBinary(t), "rotate-secret-key")
		cmd.Env = withEnv(settings)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "2/2 receivers") || !strings.Contains(string(out), want) {
			t.Fatalf("rotate-secret-key run %d: %v\n%s", run+1, err, out)
		}
	}
	for _, id := range []string{legacy.ID, sealed.ID} {
		if stored := storedSecret(t, dsn, id); !strings.HasPrefix(stored, "nfysec1:k2:") {
			t.Fatalf("receiver %s after rotation: %q", id, stored)
		}
	}

	for _, r := range []apitest.Receiver{legacy, sealed} {
		var n struct{ ID string }
		api.Call("POST", "/v1/notifications", apitest.AdminToken, map[string]any{"receiver_id": r.ID,
			"event_type": "order.paid", "idempotency_key": "k-" + r.ID, "payload": map[string]any{"ok": true}}, http.StatusAccepted, &n)
		api.WaitStatus(30*time.Second, "delivered", n.ID)
	}
	if merchant.count("/legacy") != 1 || merchant.count("/sealed") != 1 {
		t.Fatalf("verified callbacks: legacy %d, sealed %d; want 1 each", merchant.count("/legacy"), merchant.count("/sealed"))
	}

	dump, err := exec.Command(pgDump(t), "--no-owner", dsn).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(dump, []byte("nfysec1:k2:")) {
		t.Fatal("the dump holds no sealed secret: did it dump the right database?")
	}
	for what, needle := range map[string]string{
		"a whsec_ secret": "whsec_", "key k1 (base64)": k1, "key k2 (base64)": k2,
		"key k1 (hex)": hex.EncodeToString(raw1), "key k2 (hex)": hex.EncodeToString(raw2),
		"key k1 (base64url)": base64.RawURLEncoding.EncodeToString(raw1), "key k2 (base64url)": base64.RawURLEncoding.EncodeToString(raw2),
		"legacy secret": legacy.SigningSecret, "sealed secret": sealed.SigningSecret,
	} {
		if bytes.Contains(dump, []byte(needle)) {
			t.Errorf("pg_dump holds %s", what)
		}
	}
}

func storedSecret(t *testing.T, dsn, id string) string {
	t.Helper()
	out, err := exec.Command("psql", dsn, "-Atc", "SELECT signing_secret FROM receivers WHERE id = '"+id+"'").Output()
	if err != nil {
		t.Fatalf("psql: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// pgDump finds pg_dump on PATH or in the Debian/Ubuntu layout.
func pgDump(t *testing.T) string {
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(matches) == 0 {
		t.Fatal("pg_dump not found (install the PostgreSQL client)")
	}
	return matches[len(matches)-1]
}
