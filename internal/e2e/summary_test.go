package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/scheduler"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

// seed stores a notification for receiver without queueing it (no worker
// touches it), then applies set (an SQL SET list) to give it its state.
func (s *stack) seed(receiver, set string) {
	s.t.Helper()
	ctx := context.Background()
	rid, key := uuid.MustParse(receiver), uuid.NewString()
	n, _, err := s.store.InsertNotification(ctx, store.NewNotification{ID: tasks.NotificationID(rid, key), ReceiverID: rid,
		EventType: "trade.paid", IdempotencyKey: key, Payload: []byte(`{}`), MaxAttempts: 3})
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.store.Pool().Exec(ctx, `UPDATE notifications SET `+set+` WHERE id = $1`, n.ID); err != nil {
		s.t.Fatal(err)
	}
}

type summaryRow struct {
	ReceiverID   string `json:"receiver_id"`
	ReceiverName string `json:"receiver_name"`
	// ReceiverStatus is the receiver's health now (Receiver lifecycle).
	ReceiverStatus string   `json:"receiver_status"`
	Day            string   `json:"day"`
	Delivered      int      `json:"delivered"`
	Failed         int      `json:"failed"`
	Pending        int      `json:"pending"`
	Cancelled      int      `json:"cancelled"`
	FailureRate    *float64 `json:"failure_rate"`
	Attempts       int      `json:"attempts"`
}

func TestReceiverSummaryAPI(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	good := s.receiver("http://127.0.0.1:9/good", map[string]any{"name": "good"})
	bad := s.receiver("http://127.0.0.1:9/bad", map[string]any{"name": "bad"})
	// The start of yesterday (UTC) is in the day the job summarizes and out of
	// the live counts' last 24 hours at any time of day; a second ago is
	// today's (the test once failed in the first hour after midnight).
	yesterday := "created_at = (date_trunc('day', now() AT TIME ZONE 'UTC') - interval '1 day') AT TIME ZONE 'UTC'"
	recent := "created_at = now() - interval '1 second'"
	for _, set := range []string{
		yesterday + ", status = 'delivered', next_attempt_at = NULL",
		yesterday + ", status = 'delivered', next_attempt_at = NULL",
		yesterday + ", status = 'delivered', next_attempt_at = NULL",
		yesterday + ", status = 'failed', next_attempt_at = NULL",
		recent + ", status = 'delivered', next_attempt_at = NULL",
		recent, // pending
	} {
		s.seed(good.ID, set)
	}
	for _, set := range []string{
		yesterday + ", status = 'failed', next_attempt_at = NULL",
		yesterday + ", status = 'cancelled', next_attempt_at = NULL",
		recent + ", status = 'failed', next_attempt_at = NULL",
	} {
		s.seed(bad.ID, set)
	}
	sched, err := scheduler.New(s.store, nil, scheduler.Config{Logger: schedulerLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := sched.RunSummary(context.Background())
	if err != nil || len(res.Receivers) != 2 {
		t.Fatalf("summary job: %+v %v", res, err)
	}
	day := res.Day.Format(time.DateOnly)

	// A receiver sees its own history and live counts.
	var mine struct {
		Data []summaryRow
		Live struct {
			summaryRow
			From, To time.Time
		}
	}
	if code, raw := s.call("GET", "/v1/receivers/"+good.ID+"/summary?days=7", good.APIKey, nil, &mine); code != http.StatusOK {
		t.Fatalf("own summary: %d %s", code, raw)
	}
	if len(mine.Data) != 1 || mine.Data[0].Day != day || mine.Data[0].Delivered != 3 || mine.Data[0].Failed != 1 ||
		mine.Data[0].FailureRate == nil || *mine.Data[0].FailureRate != 0.25 || mine.Data[0].ReceiverID != "" {
		t.Fatalf("own daily data: %+v", mine.Data)
	}
	if l := mine.Live; l.Delivered != 1 || l.Pending != 1 || l.Failed != 0 || l.FailureRate == nil || *l.FailureRate != 0 ||
		l.To.Sub(l.From) != 24*time.Hour {
		t.Fatalf("own live counts: %+v", l)
	}
	// The admin sees the same.
	if code, raw := s.call("GET", "/v1/receivers/"+good.ID+"/summary", adminToken, nil, nil); code != http.StatusOK {
		t.Fatalf("admin: %d %s", code, raw)
	}

	// The operator's view of the day: worst first.
	var all struct {
		Day  string
		Data []summaryRow
	}
	for _, path := range []string{"/v1/receivers/summary?day=" + day, "/v1/receivers/summary"} {
		if code, raw := s.call("GET", path, adminToken, nil, &all); code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, raw)
		}
		if all.Day != day || len(all.Data) != 2 || all.Data[0].ReceiverID != bad.ID || all.Data[0].ReceiverName != "bad" ||
			all.Data[0].ReceiverStatus != "active" ||
			all.Data[0].FailureRate == nil || *all.Data[0].FailureRate != 1 || all.Data[0].Cancelled != 1 ||
			all.Data[1].ReceiverID != good.ID {
			raw, _ := json.Marshal(all)
			t.Fatalf("%s: %s", path, raw)
		}
	}
	var none struct{ Data []summaryRow }
	if code, _ := s.call("GET", "/v1/receivers/summary?day=2001-01-01", adminToken, nil, &none); code != http.StatusOK || none.Data == nil || len(none.Data) != 0 {
		t.Fatalf("day without snapshot: %d %+v", code, none)
	}

	cases := []struct {
		name, path, token string
		code              int
		field             string
	}{
		{"another receiver's summary", "/v1/receivers/" + good.ID + "/summary", bad.APIKey, http.StatusNotFound, ""},
		{"producer", "/v1/receivers/" + good.ID + "/summary", producerToken, http.StatusForbidden, ""},
		{"no token", "/v1/receivers/" + good.ID + "/summary", "", http.StatusUnauthorized, ""},
		{"unknown receiver", "/v1/receivers/" + uuid.NewString() + "/summary", adminToken, http.StatusNotFound, ""},
		{"malformed id", "/v1/receivers/nope/summary", adminToken, http.StatusNotFound, ""},
		{"days zero", "/v1/receivers/" + good.ID + "/summary?days=0", adminToken, http.StatusUnprocessableEntity, "days"},
		{"days too many", "/v1/receivers/" + good.ID + "/summary?days=91", adminToken, http.StatusUnprocessableEntity, "days"},
		{"days not a number", "/v1/receivers/" + good.ID + "/summary?days=week", adminToken, http.StatusUnprocessableEntity, "days"},
		{"all receivers as a receiver", "/v1/receivers/summary", good.APIKey, http.StatusForbidden, ""},
		{"all receivers as producer", "/v1/receivers/summary", producerToken, http.StatusForbidden, ""},
		{"bad day", "/v1/receivers/summary?day=2026-13-01", adminToken, http.StatusUnprocessableEntity, "day"},
	}
	for _, c := range cases {
		code, raw := s.call("GET", c.path, c.token, nil, nil)
		var body struct{ Error struct{ Code, Field string } }
		_ = json.Unmarshal(raw, &body)
		if code != c.code || body.Error.Field != c.field || body.Error.Code == "" {
			t.Errorf("%s: %d %s, want %d (field %q)", c.name, code, raw, c.code, c.field)
		}
	}
}
