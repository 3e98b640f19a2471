package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/store"
)

// TestRetentionDeletesOldAuditEvents: audit events are kept NOTIFYD_RETENTION
// like notifications, in batches, and younger ones stay.
func TestRetentionDeletesOldAuditEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	cases := []struct {
		age     time.Duration
		deleted bool
	}{
		{25 * time.Hour, true}, {48 * time.Hour, true}, {90 * 24 * time.Hour, true}, {26 * time.Hour, true},
		{23 * time.Hour, false}, {time.Minute, false},
	}
	events := make([]*store.AuditEvent, len(cases))
	for i, c := range cases {
		events[i] = &store.AuditEvent{OccurredAt: time.Now().Add(-c.age), PrincipalKind: "admin", Method: "PATCH",
			Route: "/v1/receivers/:id", Status: 200, RemoteIP: "127.0.0.1"}
		if err := e.store.InsertAuditEvent(ctx, events[i]); err != nil {
			t.Fatal(err)
		}
	}
	s := e.scheduler(Config{Retention: 24 * time.Hour, RetentionBatch: 3, RetentionPause: time.Millisecond})
	res, err := s.RunRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.AuditEvents != 4 {
		t.Fatalf("deleted %d audit events, want 4 (%+v)", res.AuditEvents, res)
	}
	for i, c := range cases {
		var n int
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE id = $1`, events[i].ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if (n == 0) != c.deleted {
			t.Errorf("event %s old: left %d, want deleted=%v", c.age, n, c.deleted)
		}
	}
}
