package scheduler

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/store"
)

func TestDailySummary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	healthy, broken, idle := e.receiver(), e.receiver(), e.receiver()
	day := time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	at := func(d time.Time) string { return "created_at = '" + d.Format(time.RFC3339Nano) + "'" }
	in := at(day.Add(13 * time.Hour))
	terminal := func(status string) string { return in + ", status = '" + status + "', next_attempt_at = NULL" }
	type row struct {
		r        *store.Receiver
		set      string
		attempts []int
	}
	rows := []row{
		{healthy, terminal("delivered"), []int{100}},
		{healthy, terminal("delivered"), []int{200}},
		{healthy, terminal("delivered"), []int{300}},
		{healthy, terminal("failed"), []int{400, 400, 400}},
		{healthy, in, []int{100}}, // pending, retrying
		{healthy, terminal("cancelled"), nil},
		// The first and last instants of the day count; the next day does not.
		{healthy, at(day) + ", status = 'delivered', next_attempt_at = NULL", []int{100}},
		{healthy, at(day.Add(24*time.Hour)) + ", status = 'failed', next_attempt_at = NULL", []int{9000}},
		{healthy, at(day.Add(-time.Microsecond)) + ", status = 'failed', next_attempt_at = NULL", []int{9000}},
		{broken, terminal("failed"), []int{1000, 1000}},
		{broken, terminal("failed"), []int{1000, 1000}},
		{broken, in, []int{1000}},
		{idle, at(day.Add(-48 * time.Hour)), nil},
	}
	for _, r := range rows {
		n := e.notification(r.r, r.set)
		e.attempts(n, r.attempts...)
	}

	s := e.scheduler(Config{})
	res, err := s.RunSummaryFor(ctx, day.Add(15*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Day.Equal(day) || len(res.Receivers) != 2 || res.Skipped {
		t.Fatalf("result: %+v", res)
	}
	rate := func(f float64) *float64 { return &f }
	want := []store.ReceiverSummary{
		// Worst first.
		{ReceiverID: broken.ID, ReceiverName: broken.Name, Day: day, Failed: 2, Pending: 1, FailureRate: rate(1), Attempts: 5,
			AvgAttemptMS: rate(1000), P95AttemptMS: rate(1000)},
		{ReceiverID: healthy.ID, ReceiverName: healthy.Name, Day: day, Delivered: 4, Failed: 1, Pending: 1, Cancelled: 1,
			FailureRate: rate(0.2), Attempts: 8, AvgAttemptMS: rate(2000.0 / 8), P95AttemptMS: rate(400)},
	}
	for i, w := range want {
		sameSummary(t, "snapshot", &res.Receivers[i], &w)
	}
	sameSummary(t, "total", &res.Total, &store.ReceiverSummary{Delivered: 4, Failed: 3, Pending: 2, Cancelled: 1,
		FailureRate: rate(3.0 / 7), Attempts: 13, AvgAttemptMS: rate(7000.0 / 13)})

	// Stored, and served by day and by receiver.
	stored, err := e.store.DailySummaries(ctx, day)
	if err != nil || len(stored) != 2 {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	for i := range want {
		sameSummary(t, "stored", &stored[i], &want[i])
	}
	if other, err := e.store.DailySummaries(ctx, day.Add(24*time.Hour)); err != nil || len(other) != 0 {
		t.Fatalf("next day: %+v %v", other, err)
	}

	// A re-run replaces the snapshot: the pending notification of broken
	// has failed since.
	if _, err := e.pool.Exec(ctx, `UPDATE notifications SET status = 'failed', next_attempt_at = NULL
		WHERE receiver_id = $1 AND status = 'pending'`, broken.ID); err != nil {
		t.Fatal(err)
	}
	res, err = s.RunSummaryFor(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := e.store.ReceiverDailySummaries(ctx, broken.ID, day.AddDate(0, 0, -7), day)
	if err != nil || len(mine) != 1 || mine[0].Failed != 3 || mine[0].Pending != 0 || !mine[0].ComputedAt.After(stored[0].ComputedAt) {
		t.Fatalf("after re-run: %+v %v", mine, err)
	}
	if done, err := e.store.HasDailySummaries(ctx, day); err != nil || !done {
		t.Fatalf("has summaries: %v %v", done, err)
	}

	// Live: the receiver's notifications of the window, computed now.
	live, err := e.store.LiveSummary(ctx, healthy.ID, day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sameSummary(t, "live", live, &store.ReceiverSummary{ReceiverID: healthy.ID, Delivered: 4, Failed: 1, Pending: 1, Cancelled: 1,
		FailureRate: rate(0.2), Attempts: 8, AvgAttemptMS: rate(250), P95AttemptMS: rate(400)})
	empty, err := e.store.LiveSummary(ctx, idle.ID, day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sameSummary(t, "live without notifications", empty, &store.ReceiverSummary{ReceiverID: idle.ID})
	if empty.ComputedAt.IsZero() {
		t.Error("live summary without computed_at")
	}
}

func sameSummary(t *testing.T, what string, got, want *store.ReceiverSummary) {
	t.Helper()
	ptr := func(a, b *float64) bool {
		return (a == nil) == (b == nil) && (a == nil || math.Abs(*a-*b) < 1e-9)
	}
	if got.ReceiverID != want.ReceiverID || got.ReceiverName != want.ReceiverName || !got.Day.Equal(want.Day) ||
		got.Delivered != want.Delivered || got.Failed != want.Failed || got.Pending != want.Pending ||
		got.Cancelled != want.Cancelled || got.Attempts != want.Attempts || !ptr(got.FailureRate, want.FailureRate) ||
		!ptr(got.AvgAttemptMS, want.AvgAttemptMS) || !ptr(got.P95AttemptMS, want.P95AttemptMS) {
		t.Errorf("%s:\n got %s\nwant %s", what, describe(got), describe(want))
	}
}

func describe(r *store.ReceiverSummary) string {
	f := func(p *float64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	return fmt.Sprintf("%s %q %s d=%d f=%d p=%d c=%d rate=%v attempts=%d avg=%v p95=%v", r.ReceiverID, r.ReceiverName,
		r.Day.Format(time.DateOnly), r.Delivered, r.Failed, r.Pending, r.Cancelled, f(r.FailureRate), r.Attempts,
		f(r.AvgAttemptMS), f(r.P95AttemptMS))
}
