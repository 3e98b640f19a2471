// Package receivers_test runs the example receivers (Go, Node.js, Python, PHP)
// against a real notifyd: each must verify the signature, process a
// notification once although it is delivered twice with a restart in
// between (so the record is in its database, not in memory), take what it
// missed while down from `notifyctl reconcile` through the same handler,
// and refuse a forged callback.
package receivers_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query/webhook"
)

// program is one example receiver: prepare builds or installs it and
// returns its command line ("{port}" stands for the port it must listen
// on; it gets it in PORT too).
type program struct {
	name     string
	prepare  func(t *testing.T) []string
	ready    string // what it prints once it listens
	postgres bool   // DATABASE_URL (else RECEIVER_DB, a SQLite file)
	// logsDuplicates: the program prints "duplicate <id>" for a repeated
	// delivery (Go's once.PgxHandler answers them without a word).
	logsDuplicates bool
}

func TestExampleReceivers(t *testing.T) {
	t.Parallel()
	ctl := buildNotifyctl(t)
	for _, p := range []program{
		{name: "go", prepare: prepareGo, ready: "listening on", postgres: true},
		{name: "node", prepare: prepareNode, ready: "listening on", postgres: true, logsDuplicates: true},
		{name: "python", prepare: preparePython, ready: "listening on", logsDuplicates: true},
		{name: "php", prepare: preparePHP, ready: "Development Server", logsDuplicates: true},
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			runReceiver(t, p, ctl)
		})
	}
}

func runReceiver(t *testing.T, p program, ctl string) {
	s := notifydtest.Start(t)
	port := freePort(t)
	var argv []string
	for _, a := range p.prepare(t) {
		argv = append(argv, strings.ReplaceAll(a, "{port}", strconv.Itoa(port)))
	}
	r := s.CreateReceiver(fmt.Sprintf("http://127.0.0.1:%d/notifyd", port), nil)
	env := []string{"NOTIFYD_SIGNING_SECRET=" + r.SigningSecret, "PORT=" + strconv.Itoa(port)}
	var dbURL string
	if p.postgres {
		dbURL = testenv.Database(t)
		env = append(env, "DATABASE_URL="+dbURL)
	} else {
		env = append(env, "RECEIVER_DB="+filepath.Join(t.TempDir(), "receiver.db"))
	}
	out := &testenv.SyncBuffer{}
	stop := start(t, argv, env, out, p.ready)

	sent := send(t, s, r.ID, "order-1042")
	s.WaitStatus(60*time.Second, "delivered", sent)

	// While the receiver is down a notification fails (3 attempts, 1 s
	// apart). Restarted, the receiver still knows the first one: a
	// redelivery is answered 2xx and changes nothing.
	stop()
	missed := send(t, s, r.ID, "order-1043")
	s.WaitStatus(60*time.Second, "failed", missed)
	start(t, argv, env, out, p.ready)
	s.Call(http.MethodPost, "/v1/notifications/"+sent+"/redeliver", r.APIKey, nil, http.StatusAccepted, nil)
	waitAttempts(t, s, sent, 2)

	// Reconciliation hands both to the same handler, signed like callbacks:
	// the missed one is processed now, the other is a duplicate.
	rec := exec.Command(ctl, "--url", s.URL, "--token", r.APIKey, "reconcile",
		"--checkpoint", filepath.Join(t.TempDir(), "ckpt"), "--handler-url", fmt.Sprintf("http://127.0.0.1:%d/notifyd", port))
	rec.Env = append(os.Environ(), "NOTIFYD_SIGNING_SECRET="+r.SigningSecret)
	if b, err := rec.CombinedOutput(); err != nil || !strings.Contains(string(b), "reconcile: done: 2 handled") {
		t.Fatalf("notifyctl reconcile: %v\n%s", err, b)
	}

	// A callback signed with another secret is refused.
	forged(t, port, sent)

	log := out.String()
	for _, want := range []struct {
		line string
		n    int
	}{
		{"processed " + sent + " order.paid (callback)", 1},
		{"processed " + missed + " order.paid (reconcile)", 1},
		{"processed " + sent, 1},
		{"processed " + missed, 1},
	} {
		if n := strings.Count(log, want.line); n != want.n {
			t.Errorf("%q appears %d times, want %d; output:\n%s", want.line, n, want.n, log)
		}
	}
	if p.logsDuplicates && (!strings.Contains(log, "duplicate "+sent+" order.paid (callback)") ||
		!strings.Contains(log, "duplicate "+sent+" order.paid (reconcile)")) {
		t.Errorf("the redelivery and the reconciliation were not reported as duplicates; output:\n%s", log)
	}
	if p.postgres {
		conn, err := pgx.Connect(context.Background(), dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var payments, recorded int
		if err := conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM payments),
			(SELECT count(*) FROM notifyd_received WHERE notification_id IN ($1, $2))`, sent, missed).Scan(&payments, &recorded); err != nil {
			t.Fatal(err)
		}
		if payments != 2 || recorded != 2 {
			t.Errorf("%d payments and %d de-duplication rows, want 2 and 2", payments, recorded)
		}
	}
}

func send(t *testing.T, s *notifydtest.Stack, receiverID, key string) string {
	t.Helper()
	var a struct{ ID string }
	s.Call(http.MethodPost, "/v1/notifications", apitest.ProducerToken, map[string]any{
		"receiver_id": receiverID, "event_type": "order.paid", "idempotency_key": key, "payload": map[string]int{"amount": 4200},
	}, http.StatusAccepted, &a)
	return a.ID
}

func buildNotifyctl(t *testing.T) string { return goBuild(t, "../../cmd/notifyctl") }

// goBuild builds the Go package at path into the test's directory.
func goBuild(t *testing.T, path string) string {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: " + path + " cannot be built")
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(path))
	run(t, ".", 5*time.Minute, goTool, "build", "-o", bin, path)
	return bin
}

// waitAttempts waits until notification id has n attempts, the last one a
// success.
func waitAttempts(t *testing.T, s *notifydtest.Stack, id string, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var a struct{ Data []struct{ Outcome string } }
		s.Call(http.MethodGet, "/v1/notifications/"+id+"/attempts", apitest.AdminToken, nil, http.StatusOK, &a)
		if len(a.Data) >= n {
			if last := a.Data[len(a.Data)-1].Outcome; len(a.Data) != n || last != "success" {
				t.Fatalf("attempts %+v, want %d ending in success", a.Data, n)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("notification %s: %d attempts after 60 s, want %d", id, len(a.Data), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func forged(t *testing.T, port int, id string) {
	t.Helper()
	secret, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	req, err := signer.Request(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/notifyd", port), &webhook.Event{
		ID: id + "-forged", Type: "order.paid", IdempotencyKey: "order-1042", CreatedAt: time.Now(), Data: []byte(`{"amount":1}`),
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged callback answered %d, want 400", resp.StatusCode)
	}
}

// start runs argv until the test ends or stop is called, and waits until
// it prints ready.
func start(t *testing.T, argv, env []string, out *testenv.SyncBuffer, ready string) (stop func()) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	mark := out.Len()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String()[mark:], ready) {
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			stop()
			t.Fatalf("%s did not start listening within 60 s; output:\n%s", argv[0], out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop
}

func prepareGo(t *testing.T) []string { return []string{goBuild(t, "./go")} }

func prepareNode(t *testing.T) []string {
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		t.Skip("node or npm is not installed (Debian: apt-get install nodejs npm): the Node.js example is not run")
	}
	// A copy, so the test neither needs nor leaves node_modules in the tree.
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "server.js"} {
		b, err := os.ReadFile(filepath.Join("node", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, dir, 5*time.Minute, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	return []string{node, filepath.Join(dir, "server.js")}
}

func preparePython(t *testing.T) []string {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed (Debian: apt-get install python3): the Python example is not run")
	}
	abs, err := filepath.Abs(filepath.Join("python", "receiver.py"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{py, abs}
}

func preparePHP(t *testing.T) []string {
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php is not installed (Debian: apt-get install php-cli php-sqlite3; scripts/services.sh does): the PHP example is not run")
	}
	if out, err := exec.Command(php, "-m").Output(); err != nil || !strings.Contains(string(out), "pdo_sqlite") {
		t.Skip("php lacks pdo_sqlite (Debian: apt-get install php-sqlite3; scripts/services.sh does): the PHP example is not run")
	}
	abs, err := filepath.Abs(filepath.Join("php", "receiver.php"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{php, "-S", "127.0.0.1:{port}", abs}
}

func run(t *testing.T, dir string, timeout time.Duration, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
