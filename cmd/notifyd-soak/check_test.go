package main

import (
	"slices"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/fleet"
)

// base is a clean history: three notifications, one per path, each
// delivered at its first attempt (the second after a failed attempt 1).
func base() *History {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	req := func(rcv int, id string, attempt, code int, at time.Duration) fleet.Request {
		return fleet.Request{Receiver: rcv, ID: id, Attempt: attempt, Code: code, Start: t0.Add(at), End: t0.Add(at + 100*time.Millisecond)}
	}
	return &History{
		Accepted:  []Sent{{ID: "n-go", Path: "go", Key: "go-1"}, {ID: "n-http", Path: "http", Key: "http-1"}, {ID: "n-out", Path: "outbox", Key: "outbox-1"}},
		Abandoned: map[string]bool{},
		Seen: []fleet.Request{
			req(0, "n-go", 1, 200, 0),
			req(0, "n-http", 1, 500, time.Second),
			req(0, "n-http", 2, 200, 2*time.Second),
			req(1, "n-out", 1, 200, 0),
		},
		Notes: map[string]*Record{
			"n-go":   {Status: "delivered", Attempts: 1, Key: "go-1", Rows: map[int]Row{1: {"success", 200}}},
			"n-http": {Status: "delivered", Attempts: 2, Key: "http-1", Rows: map[int]Row{1: {"failure", 500}, 2: {"success", 200}}},
			"n-out":  {Status: "delivered", Attempts: 1, Key: "outbox-1", Rows: map[int]Row{1: {"success", 200}}},
		},
		Cap: 1,
	}
}

// TestCheckFindsEachViolation feeds the checker histories with one broken
// promise each and expects exactly that violation, naming the id involved.
func TestCheckFindsEachViolation(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		break_ func(h *History)
		kind   string
		id     string
	}{
		{"pending forever", func(h *History) { h.Notes["n-http"].Status = "pending" }, VNotTerminal, "n-http"},
		{"http notification missing", func(h *History) { delete(h.Notes, "n-http"); h.Seen = h.Seen[:1] }, VNotTerminal, "n-http"},
		{"outbox notification missing", func(h *History) { delete(h.Notes, "n-out"); h.Seen = h.Seen[:3] }, VNotTerminal, "n-out"},
		{"delivered but never seen", func(h *History) { h.Seen = h.Seen[1:] }, VDeliveredNotSeen, "n-go"},
		{"success recorded for an aborted request", func(h *History) { h.Seen[0].Aborted = true; h.Seen[0].Code = 0 }, VDeliveredNotSeen, "n-go"},
		{"delivered with a failed last attempt", func(h *History) { h.Notes["n-out"].Rows[1] = Row{"failure", 500} }, VDeliveredNotSeen, "n-out"},
		{"seen attempt not on record", func(h *History) {
			h.Seen = append(h.Seen, fleet.Request{Receiver: 1, ID: "n-out", Attempt: 2, Code: 200, Start: t0.Add(5 * time.Second), End: t0.Add(6 * time.Second)})
		}, VSeenNotRecorded, "n-out"},
		{"attempt rows deleted", func(h *History) { h.Notes["n-http"].Rows = map[int]Row{} }, VSeenNotRecorded, "n-http"},
		{"attempt recorded twice", func(h *History) { h.Twice = []string{"n-http#1"} }, VAttemptTwice, "n-http#1"},
		{"attempts column behind", func(h *History) { h.Notes["n-http"].Attempts = 1 }, VAttemptGap, "n-http"},
		{"over the cap", func(h *History) {
			h.Seen = append(h.Seen, fleet.Request{Receiver: 0, ID: "n-go", Attempt: 1, Code: 200, Start: t0.Add(50 * time.Millisecond), End: t0.Add(time.Second)})
		}, VOverCap, "receiver-0"},
		// The worker gave up 2 s after the receiver's start; the next request
		// began before that, so the two overlapped.
		{"over the cap beside an aborted request", func(h *History) {
			h.Timeout = 2 * time.Second
			h.Seen[0].End, h.Seen[0].Aborted, h.Seen[0].Code = t0.Add(5*time.Second), true, 0
			h.Seen[1].Start = t0.Add(1900 * time.Millisecond)
		}, VOverCap, "receiver-0"},
		{"bad signature", func(h *History) { h.Seen[3].SigErr = "webhook: invalid signature" }, VBadSignature, "n-out"},
		{"seen but never accepted", func(h *History) {
			h.Seen = append(h.Seen, fleet.Request{Receiver: 2, ID: "n-ghost", Attempt: 1, Code: 200, Start: t0, End: t0.Add(time.Millisecond)})
		}, VSeenNotAccepted, "n-ghost"},
		{"on record but never accepted", func(h *History) {
			h.Notes["n-ghost"] = &Record{Status: "failed", Attempts: 0, Key: "ghost", Rows: map[int]Row{}}
		}, VRecordNotAccepted, "n-ghost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			tt.break_(h)
			rep := Check(h)
			found := false
			for _, v := range rep.Violations {
				if v.Kind == tt.kind && v.ID == tt.id {
					found = true
				}
			}
			if !found {
				t.Errorf("want %q for %s; got %v", tt.kind, tt.id, rep.Violations)
			}
		})
	}
}

// TestCheckCleanHistoryAndWhatIsCountedApart: a clean history has no
// violation; a lost Go-client notification, an overshoot of the cap while
// Redis had lost the slots and an abandoned send that exists anyway are
// counted, not reported as violations.
func TestCheckCleanHistoryAndWhatIsCountedApart(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name                         string
		change                       func(h *History)
		goLost, capLoss, unconfirmed int
		delivered, failed            int
	}{
		{"clean", func(*History) {}, 0, 0, 0, 3, 0},
		{"go client loss window", func(h *History) { delete(h.Notes, "n-go"); h.Seen = h.Seen[1:] }, 1, 0, 0, 2, 0},
		// A receiver got the attempt, then the worker stopped before recording
		// it and Redis lost the task: the same window, not a violation.
		{"go client loss window, attempt seen", func(h *History) { delete(h.Notes, "n-go") }, 1, 0, 0, 2, 0},
		{"cap overshoot while Redis lost the slots", func(h *History) {
			h.Seen = append(h.Seen, fleet.Request{Receiver: 0, ID: "n-go", Attempt: 1, Code: 200, Start: t0.Add(50 * time.Millisecond), End: t0.Add(time.Second)})
			h.RedisLoss = []Window{{From: t0, To: t0.Add(time.Second)}}
		}, 0, 1, 0, 3, 0},
		{"cap overshoot by two, ending inside the window", func(h *History) {
			for range 2 {
				h.Seen = append(h.Seen, fleet.Request{Receiver: 0, ID: "n-go", Attempt: 1, Code: 200, Start: t0.Add(50 * time.Millisecond), End: t0.Add(time.Second)})
			}
			h.RedisLoss = []Window{{From: t0, To: t0.Add(2 * time.Second)}}
		}, 0, 1, 0, 3, 0},
		// The receiver noticed the closed connection late (a loaded machine);
		// the worker had closed it by 2 s, and only then sent the next.
		{"aborted request noticed late", func(h *History) {
			h.Timeout = 2 * time.Second
			h.Seen = append(h.Seen, fleet.Request{Receiver: 0, ID: "n-go", Attempt: 1, Start: t0.Add(10 * time.Second), End: t0.Add(12100 * time.Millisecond), Aborted: true})
			h.Seen = append(h.Seen, fleet.Request{Receiver: 0, ID: "n-http", Attempt: 2, Code: 200, Start: t0.Add(12050 * time.Millisecond), End: t0.Add(12200 * time.Millisecond)})
		}, 0, 0, 0, 3, 0},
		{"abandoned send that exists", func(h *History) {
			h.Abandoned["http-2"] = true
			h.Notes["n-late"] = &Record{Status: "failed", Attempts: 1, Key: "http-2", Rows: map[int]Row{1: {"gone", 410}}}
			h.Seen = append(h.Seen, fleet.Request{Receiver: 3, ID: "n-late", Attempt: 1, Code: 410, Start: t0, End: t0.Add(time.Millisecond)})
		}, 0, 0, 1, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			tt.change(h)
			rep := Check(h)
			if len(rep.Violations) != 0 {
				t.Errorf("violations in a correct history: %v", rep.Violations)
			}
			got := []int{len(rep.GoLost), rep.CapAfterRedisLoss, rep.Unconfirmed, rep.Delivered, rep.Failed}
			want := []int{tt.goLost, tt.capLoss, tt.unconfirmed, tt.delivered, tt.failed}
			if !slices.Equal(got, want) {
				t.Errorf("go lost, cap after loss, unconfirmed, delivered, failed = %v, want %v", got, want)
			}
		})
	}
}

// TestPlanIsAFunctionOfTheSeed: the same seed gives the same schedule, a
// different seed another, and a long run draws every kind of fault.
func TestPlanIsAFunctionOfTheSeed(t *testing.T) {
	a, b := Plan(7, 30*time.Minute, 12), Plan(7, 30*time.Minute, 12)
	if !slices.Equal(a, b) {
		t.Fatal("seed 7 gave two different schedules")
	}
	if slices.Equal(a, Plan(8, 30*time.Minute, 12)) {
		t.Error("seeds 7 and 8 gave the same schedule")
	}
	kinds := make(map[string]int)
	for i, f := range a {
		kinds[f.Kind]++
		if i > 0 && f.At-a[i-1].At < faultGapMin {
			t.Errorf("faults %d and %d only %s apart", i-1, i, f.At-a[i-1].At)
		}
	}
	for _, k := range faultKinds {
		if kinds[k] == 0 {
			t.Errorf("no %s in 30 minutes", k)
		}
	}
	t.Logf("30 min, seed 7: %d faults %v", len(a), kinds)
}
