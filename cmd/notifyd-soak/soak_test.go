package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// lineWriter sends each line of progress to t.Log.
type lineWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.t.Log(strings.TrimRight(line, "\n"))
	}
}

// TestSoakReportsARealViolation runs a short soak (45 s of load with seed
// 3's faults: Redis restarted empty, a receiver down, Postgres cut off, a
// worker SIGKILLed, a Sentinel failover, an API SIGTERMed) and, from
// outside, breaks a promise the way a broken build would: mid-run it
// deletes the attempt rows of three delivered notifications from Postgres,
// as if a worker had acknowledged a task without recording its attempt. The
// checker must name exactly those three as seen by a receiver but not on
// record, and find nothing else.
func TestSoakReportsARealViolation(t *testing.T) {
	if testing.Short() || os.Getenv("NOTIFYD_SKIP_SOAK") == "1" {
		t.Skip("soak skipped (-short or NOTIFYD_SKIP_SOAK=1)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	bin := filepath.Join(t.TempDir(), "notifyd")
	build := exec.Command("go", "build", "-o", bin, "github.com/notifyd/notifyd/cmd/notifyd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build notifyd: %v\n%s", err, out)
	}
	var (
		mu       sync.Mutex
		tampered []string
		wg       sync.WaitGroup
	)
	cfg := config{Duration: 45 * time.Second, Seed: 3, Rate: 20, Drain: 3 * time.Minute, Bin: bin, Out: &lineWriter{t: t},
		Started: func(dbURL string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids, err := deleteAttempts(dbURL, 3)
				if err != nil {
					t.Errorf("tamper: %v", err)
				}
				mu.Lock()
				tampered = ids
				mu.Unlock()
			}()
		}}
	res, err := run(context.Background(), cfg)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accepted %v, faults %v, %d requests seen, go client lost %d", res.Accepted, res.Faults, res.Seen, len(res.Report.GoLost))
	if len(tampered) != 3 {
		t.Fatalf("tampered with %d notifications, want 3", len(tampered))
	}
	named := make(map[string]bool)
	for _, v := range res.Report.Violations {
		if v.Kind == VSeenNotRecorded {
			named[v.ID] = true
		}
		if !contains(tampered, v.ID) {
			t.Errorf("violation not caused by the test: %s", v)
		}
	}
	for _, id := range tampered {
		if !named[id] {
			t.Errorf("checker did not report %s (attempt rows deleted) as seen but not on record", id)
		}
	}
	if len(res.Harness) > 0 {
		t.Errorf("faults the harness could not perform: %v", res.Harness)
	}
}

// deleteAttempts waits until n notifications are delivered and deletes
// their attempt rows, returning their ids.
func deleteAttempts(dbURL string, n int) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	db, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	for {
		var ids []string
		rows, err := db.Query(ctx, `SELECT id::text FROM notifications WHERE status = 'delivered' ORDER BY id LIMIT $1`, n)
		if err == nil {
			for rows.Next() {
				var id string
				if err = rows.Scan(&id); err != nil {
					break
				}
				ids = append(ids, id)
			}
			rows.Close()
		}
		if err == nil && len(ids) == n {
			_, err = db.Exec(ctx, `DELETE FROM delivery_attempts WHERE notification_id = ANY($1::uuid[])`, ids)
			return ids, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
