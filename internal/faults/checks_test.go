package faults

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// attemptRow is an automatic attempt as Postgres recorded it.
type attemptRow struct {
	outcome string
	code    int
	err     string
}

// noteState is a notification as Postgres has it, with its attempts.
type noteState struct {
	status      string
	attempts    int
	maxAttempts int
	nextAttempt bool // next_attempt_at is set
	rows        map[int]attemptRow
}

// load reads every notification and every automatic attempt of the test's
// database.
func (c *cluster) load(t *testing.T) map[string]*noteState {
	t.Helper()
	ctx := context.Background()
	out := make(map[string]*noteState)
	rows, err := c.db.Query(ctx, `SELECT id::text, status::text, attempts, max_attempts, next_attempt_at IS NOT NULL FROM notifications`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		n := &noteState{rows: make(map[int]attemptRow)}
		if err := rows.Scan(&id, &n.status, &n.attempts, &n.maxAttempts, &n.nextAttempt); err != nil {
			t.Fatal(err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = c.db.Query(ctx, `SELECT notification_id::text, attempt_no, outcome::text, coalesce(status_code, 0), coalesce(error, '')
		FROM delivery_attempts WHERE attempt_no > 0`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var no int
		var a attemptRow
		if err := rows.Scan(&id, &no, &a.outcome, &a.code, &a.err); err != nil {
			t.Fatal(err)
		}
		if n := out[id]; n != nil {
			n.rows[no] = a
		} else {
			t.Errorf("attempt %d recorded for unknown notification %s", no, id)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitTerminal waits until none of the database's notifications is pending
// and at least want exist, logging progress.
func (c *cluster) waitTerminal(t *testing.T, want int, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	lastLog := start
	for {
		var pending, total int
		err := c.db.QueryRow(context.Background(),
			`SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FROM notifications`).Scan(&pending, &total)
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 && total >= want {
			t.Logf("all %d notifications terminal after %s", total, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("after %s: %d of %d notifications still pending (want %d terminal)", timeout, pending, total, want)
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			t.Logf("waiting: %d of %d notifications pending after %s", pending, total, time.Since(start).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// audit is what checkRecords found, for the test's own bounds.
type audit struct {
	notes map[string]*noteState
	// extra[id] is the receivers' automatic requests for id minus the
	// attempts Postgres recorded for it.
	extra      map[string]int
	extraTotal int
	delivered  int
	failed     int
}

// checkRecords checks the invariants every fault must preserve, with all
// notifications terminal:
//   - exactly the ingested notifications exist (none lost, none created);
//   - every one is delivered or failed, with no next attempt planned;
//   - attempts equals the number of automatic attempt rows, numbered 1..attempts;
//   - the status follows from the last attempt (delivered iff it succeeded;
//     failed only after max attempts);
//   - every recorded attempt matches a request a receiver answered with the
//     recorded status code (a recorded timeout, a request the sender gave
//     up on), and every attempt a receiver saw is on record;
//   - receivers saw at least as many requests as were recorded.
func checkRecords(t *testing.T, c *cluster, rs *receivers, ids []string) *audit {
	t.Helper()
	notes := c.load(t)
	a := &audit{notes: notes, extra: make(map[string]int)}
	if len(notes) != len(ids) {
		t.Errorf("%d notifications in Postgres, %d ingested", len(notes), len(ids))
	}
	answered := make(map[string]map[int]int)  // id → attempt → code answered (completed requests)
	timedOut := make(map[string]map[int]bool) // id → attempt → the sender gave up waiting
	for _, r := range rs.Snapshot() {
		if r.Attempt > 0 && r.Aborted {
			if timedOut[r.ID] == nil {
				timedOut[r.ID] = make(map[int]bool)
			}
			timedOut[r.ID][r.Attempt] = true
		}
		if r.Attempt > 0 && !r.Aborted && r.Code != 0 {
			if answered[r.ID] == nil {
				answered[r.ID] = make(map[int]int)
			}
			answered[r.ID][r.Attempt] = r.Code
		}
	}
	seen := rs.SeenAttempts()
	var problems []string
	bad := func(id, format string, args ...any) {
		problems = append(problems, id+": "+fmt.Sprintf(format, args...))
	}
	for _, id := range ids {
		n := notes[id]
		if n == nil {
			bad(id, "ingested but not in Postgres")
			continue
		}
		switch n.status {
		case "delivered":
			a.delivered++
		case "failed":
			a.failed++
		default:
			bad(id, "status %s, want delivered or failed", n.status)
		}
		if n.nextAttempt {
			bad(id, "terminal (%s) but next_attempt_at is set", n.status)
		}
		if len(n.rows) != n.attempts {
			bad(id, "attempts column %d but %d automatic attempt rows", n.attempts, len(n.rows))
		}
		for no := 1; no <= n.attempts; no++ {
			row, ok := n.rows[no]
			if !ok {
				bad(id, "attempt %d of %d missing", no, n.attempts)
				continue
			}
			if no < n.attempts && row.outcome == "success" {
				bad(id, "attempt %d succeeded but attempt %d followed", no, no+1)
			}
			if row.outcome == "timeout" && timedOut[id][no] {
				continue // a receiver that hangs: the worker gave up before its answer
			}
			if code, ok := answered[id][no]; !ok || code != row.code {
				bad(id, "attempt %d recorded with status %d (%s %q); receivers answered %d", no, row.code, row.outcome, row.err, code)
			}
		}
		if last, ok := n.rows[n.attempts]; ok {
			if (n.status == "delivered") != (last.outcome == "success") {
				bad(id, "status %s but last attempt %d outcome %s", n.status, n.attempts, last.outcome)
			}
			if n.status == "failed" && n.attempts < n.maxAttempts && last.outcome != "gone" {
				bad(id, "failed after %d of %d attempts (last outcome %s %q)", n.attempts, n.maxAttempts, last.outcome, last.err)
			}
		} else if n.attempts == 0 {
			bad(id, "terminal with no attempt")
		}
		total := 0
		for no, k := range seen[id] {
			total += k
			if _, ok := n.rows[no]; !ok {
				bad(id, "receivers saw attempt %d (%d times) but it is not on record (attempts %d)", no, k, n.attempts)
			}
		}
		a.extra[id] = total - len(n.rows)
		a.extraTotal += total - len(n.rows)
		if total < len(n.rows) {
			bad(id, "receivers saw %d requests but %d attempts are recorded", total, len(n.rows))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		t.Errorf("%d problems in the records:\n%s", len(problems), strings.Join(problems[:min(len(problems), 40)], "\n"))
	}
	// The same invariant in SQL, independent of the Go bookkeeping above.
	var mismatched int
	if err := c.db.QueryRow(context.Background(), `
		SELECT count(*) FROM notifications n
		WHERE n.attempts <> (SELECT count(*) FROM delivery_attempts a WHERE a.notification_id = n.id AND a.attempt_no > 0)`).
		Scan(&mismatched); err != nil {
		t.Fatal(err)
	}
	if mismatched != 0 {
		t.Errorf("%d notifications whose attempts column differs from their automatic attempt rows", mismatched)
	}
	t.Logf("records: %d delivered, %d failed; receivers saw %d requests more than recorded", a.delivered, a.failed, a.extraTotal)
	return a
}
