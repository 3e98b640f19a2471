package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/fleet"
)

// Violation kinds the checker reports.
const (
	VNotTerminal       = "accepted but never terminal"
	VDeliveredNotSeen  = "delivered but never seen"
	VSeenNotRecorded   = "seen but not on record"
	VAttemptTwice      = "attempt number recorded twice"
	VAttemptGap        = "attempts column disagrees with attempt rows"
	VOverCap           = "more in flight at a receiver than its cap"
	VBadSignature      = "signature does not verify"
	VSeenNotAccepted   = "seen but never accepted"
	VRecordNotAccepted = "on record but never accepted"
)

// Sent is a notification a producer was told was accepted.
type Sent struct {
	ID   string
	Path string // "go", "http" or "outbox"
	Key  string // idempotency key
}

// Record is a notification as Postgres has it.
type Record struct {
	Status   string
	Attempts int    // the attempts column
	Key      string // idempotency key
	Rows     map[int]Row
}

// Row is one automatic attempt on record.
type Row struct {
	Outcome string
	Code    int
}

// History is the three independent records the checker audits.
type History struct {
	Accepted []Sent
	// Abandoned holds the idempotency keys of sends whose outcome the
	// producer never learnt (every try errored): the notification may or
	// may not exist, and either is correct.
	Abandoned map[string]bool
	Seen      []fleet.Request
	Notes     map[string]*Record
	// Twice lists (id, attempt) pairs Postgres holds more than once.
	Twice []string
	Cap   int
	// Timeout is the workers' delivery timeout: an aborted request counts
	// as in flight until Start+Timeout at the latest
	// (fleet.Request.InFlightUntil).
	Timeout time.Duration
	// RedisLoss are the spans in which Redis lost data (restarted empty or
	// failed over): the receivers' slots live in Redis, so the cap cannot
	// hold there; an overshoot inside one is counted apart.
	RedisLoss []Window
}

// Window is a span of time.
type Window struct{ From, To time.Time }

func inAny(ws []Window, at time.Time) bool {
	for _, w := range ws {
		if !at.Before(w.From) && !at.After(w.To) {
			return true
		}
	}
	return false
}

// Violation is one broken promise, with the ids involved.
type Violation struct {
	Kind   string
	ID     string
	Detail string
}

func (v Violation) String() string { return fmt.Sprintf("%s: %s (%s)", v.Kind, v.ID, v.Detail) }

// Report is the checker's verdict.
type Report struct {
	Violations []Violation
	// GoLost are Go-client notifications acknowledged by Notify that never
	// reached Postgres: the documented loss window, counted apart.
	GoLost []string
	// GoLostSeen counts those of GoLost a receiver got an attempt of before
	// Redis lost the task (the worker was stopped, or Postgres was cut,
	// before it recorded the attempt): lost from notifyd's record all the
	// same, and inside the same documented window.
	GoLostSeen  int
	Delivered   int
	Failed      int
	Unconfirmed int // abandoned sends that exist anyway
	PeakInCap   int // receivers whose peak reached the cap
	// CapAfterRedisLoss counts receivers over the cap only while Redis had
	// lost their slots (History.RedisLoss): documented, not a violation.
	CapAfterRedisLoss int
}

// Check audits h and returns every violation found.
func Check(h *History) *Report {
	r := &Report{}
	add := func(kind, id, format string, args ...any) {
		r.Violations = append(r.Violations, Violation{kind, id, fmt.Sprintf(format, args...)})
	}
	accepted := checkAccepted(h, r, add)
	checkSeen(h, accepted, r, add)
	checkRecorded(h, accepted, r, add)
	for _, dup := range h.Twice {
		add(VAttemptTwice, dup, "primary key should make this impossible")
	}
	checkCap(h, r, add)
	sort.SliceStable(r.Violations, func(i, j int) bool {
		a, b := r.Violations[i], r.Violations[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.ID < b.ID
	})
	return r
}

type addFunc func(kind, id, format string, args ...any)

// checkAccepted: every accepted notification is terminal in Postgres, with
// its attempts numbered 1..attempts; a Go-client one missing altogether is
// the documented loss window.
func checkAccepted(h *History, r *Report, add addFunc) map[string]Sent {
	accepted := make(map[string]Sent, len(h.Accepted))
	for _, s := range h.Accepted {
		accepted[s.ID] = s
		n := h.Notes[s.ID]
		switch {
		case n == nil && s.Path == "go":
			r.GoLost = append(r.GoLost, s.ID)
			continue
		case n == nil:
			add(VNotTerminal, s.ID, "%s notification not in Postgres", s.Path)
			continue
		case n.Status == "delivered":
			r.Delivered++
		case n.Status == "failed" || n.Status == "cancelled":
			r.Failed++
		default:
			add(VNotTerminal, s.ID, "%s notification %s after %d attempts", s.Path, n.Status, n.Attempts)
		}
		if len(n.Rows) != n.Attempts {
			add(VAttemptGap, s.ID, "attempts %d, %d attempt rows", n.Attempts, len(n.Rows))
		}
		for no := range n.Rows {
			if no > n.Attempts {
				add(VAttemptGap, s.ID, "attempt %d on record beyond attempts %d", no, n.Attempts)
			}
		}
	}
	return accepted
}

// checkSeen: every request a receiver saw carries a valid signature, belongs
// to an accepted notification and is on record.
func checkSeen(h *History, accepted map[string]Sent, r *Report, add addFunc) {
	unconfirmed := make(map[string]bool)
	goSeen := make(map[string]bool)
	for _, q := range h.Seen {
		if q.SigErr != "" {
			add(VBadSignature, q.ID, "receiver %d, attempt %d: %s", q.Receiver, q.Attempt, q.SigErr)
		}
		n := h.Notes[q.ID]
		if _, ok := accepted[q.ID]; !ok {
			if n != nil && h.Abandoned[n.Key] {
				unconfirmed[q.ID] = true
			} else {
				add(VSeenNotAccepted, q.ID, "receiver %d, attempt %d", q.Receiver, q.Attempt)
				continue
			}
		}
		if q.Attempt <= 0 {
			continue // a manual redelivery: not an automatic attempt
		}
		switch {
		case n == nil && accepted[q.ID].Path == "go":
			goSeen[q.ID] = true // in r.GoLost already: the loss window
		case n == nil:
			add(VSeenNotRecorded, q.ID, "attempt %d seen by receiver %d; notification not in Postgres", q.Attempt, q.Receiver)
		default:
			if _, ok := n.Rows[q.Attempt]; !ok {
				add(VSeenNotRecorded, q.ID, "attempt %d seen by receiver %d; attempts on record %d", q.Attempt, q.Receiver, n.Attempts)
			}
		}
	}
	r.Unconfirmed = len(unconfirmed)
	r.GoLostSeen = len(goSeen)
}

// checkRecorded: a delivered notification's successful attempt was seen
// and answered 2xx; nothing is on record that no producer sent.
func checkRecorded(h *History, accepted map[string]Sent, r *Report, add addFunc) {
	answered := make(map[string]map[int]bool) // id → attempt → a receiver answered 2xx
	for _, q := range h.Seen {
		if q.Code >= 200 && q.Code < 300 && !q.Aborted {
			if answered[q.ID] == nil {
				answered[q.ID] = make(map[int]bool)
			}
			answered[q.ID][q.Attempt] = true
		}
	}
	for id, n := range h.Notes {
		if _, ok := accepted[id]; !ok && !h.Abandoned[n.Key] {
			add(VRecordNotAccepted, id, "status %s, key %s", n.Status, n.Key)
		}
		for no, row := range n.Rows {
			if row.Outcome == "success" && !answered[id][no] {
				add(VDeliveredNotSeen, id, "attempt %d recorded as success (HTTP %d); no receiver answered it 2xx", no, row.Code)
			}
		}
		if n.Status == "delivered" {
			if last, ok := n.Rows[n.Attempts]; !ok || last.Outcome != "success" {
				add(VDeliveredNotSeen, id, "delivered, but attempt %d on record is not a success", n.Attempts)
			}
		}
	}
}

// checkCap: no receiver had more requests in flight at once than the cap,
// from the start and end times the receivers measured.
func checkCap(h *History, r *Report, add addFunc) {
	byReceiver := make(map[int][]capEvent)
	for i, q := range h.Seen {
		end := q.InFlightUntil(h.Timeout)
		byReceiver[q.Receiver] = append(byReceiver[q.Receiver], capEvent{q.Start, 1, i}, capEvent{end, -1, i})
	}
	for idx, evs := range byReceiver {
		peak, peakAt, inPeak, lossPeak := inFlightPeak(evs, h)
		if h.Cap > 0 && peak > h.Cap {
			add(VOverCap, fmt.Sprintf("receiver-%d", idx), "%d in flight at %s, cap %d: %s; Redis lost data %s",
				peak, peakAt.Format("15:04:05.000"), h.Cap, requestsText(h.Seen, inPeak), windowsText(h.RedisLoss))
		}
		if lossPeak > 0 {
			r.CapAfterRedisLoss++
		}
		if max(peak, lossPeak) >= h.Cap {
			r.PeakInCap++
		}
	}
}

// capEvent is a request (index into History.Seen) starting (+1) or ending (-1).
type capEvent struct {
	at    time.Time
	delta int
	req   int
}

// inFlightPeak walks one receiver's events in time order. It returns the
// highest number in flight outside the Redis-loss windows, when it was
// reached and which requests made it, and the highest above the cap inside
// those windows.
func inFlightPeak(evs []capEvent, h *History) (peak int, peakAt time.Time, inPeak []int, lossPeak int) {
	// At equal times an end comes first: the slot was free.
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at.Equal(evs[j].at) {
			return evs[i].delta < evs[j].delta
		}
		return evs[i].at.Before(evs[j].at)
	})
	open := make(map[int]bool)
	for _, e := range evs {
		if e.delta < 0 {
			// An end never raises the peak (and must not count an overshoot
			// inside a Redis-loss window as one outside).
			delete(open, e.req)
			continue
		}
		open[e.req] = true
		switch in := len(open); {
		case in > h.Cap && inAny(h.RedisLoss, e.at):
			lossPeak = max(lossPeak, in)
		case in > peak:
			peak, peakAt = in, e.at
			inPeak = inPeak[:0]
			for i := range open {
				inPeak = append(inPeak, i)
			}
		}
	}
	sort.Ints(inPeak)
	return peak, peakAt, inPeak, lossPeak
}

// requestsText names the requests at reqs (indexes into seen) for a report.
func requestsText(seen []fleet.Request, reqs []int) string {
	parts := make([]string, 0, len(reqs))
	for _, i := range reqs {
		q := seen[i]
		end := "still open"
		if !q.End.IsZero() {
			end = q.End.Format("15:04:05.000")
		}
		note := ""
		if q.Aborted {
			note = " aborted"
		}
		parts = append(parts, fmt.Sprintf("%s#%d %s–%s%s", q.ID, q.Attempt, q.Start.Format("15:04:05.000"), end, note))
	}
	return strings.Join(parts, ", ")
}

func windowsText(ws []Window) string {
	if len(ws) == 0 {
		return "never"
	}
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s–%s", w.From.Format("15:04:05.000"), w.To.Format("15:04:05.000"))
	}
	return b.String()
}
