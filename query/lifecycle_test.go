package query

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

type healthAnswer struct {
	Active            bool       `json:"active"`
	Status            string     `json:"status"`
	DisabledAt        *time.Time `json:"disabled_at"`
	DisabledReason    *string    `json:"disabled_reason"`
	FailingSince      *time.Time `json:"failing_since"`
	StatusCallbackURL *string    `json:"status_callback_url"`
}

// TestReceiverLifecycleAPI: the health fields of a receiver and its
// summary, status_callback_url, and what the API does for a disabled
// receiver: ingest accepts and records failed, recover refuses until
// enable, enable (by the receiver itself, or PATCH active: true by the
// admin) takes it back and records receiver.enabled for the operator.
func TestReceiverLifecycleAPI(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ctx := context.Background()
	op, _, err := a.store.SetOperatorReceiver(ctx, "https://ops.example.com/events",
		&store.Receiver{ID: uuid.New(), Name: "notifyd operator", SigningSecret: "whsec_b3BlcmF0b3Itc2VjcmV0LXRlc3Q="})
	if err != nil {
		t.Fatal(err)
	}
	r := a.receiver()
	other := a.receiver()
	path := "/v1/receivers/" + r.ID.String()

	var h healthAnswer
	a.must(http.StatusOK, "PATCH", path, testAdminToken, map[string]any{"status_callback_url": "https://shop.example.com/status"}, &h)
	if h.Status != store.ReceiverActive || h.StatusCallbackURL == nil || *h.StatusCallbackURL != "https://shop.example.com/status" || h.DisabledAt != nil {
		t.Fatalf("after PATCH status_callback_url: %+v", h)
	}
	code, raw := a.do("PATCH", path, testAdminToken, map[string]any{"status_callback_url": "ftp://x"})
	if e := apiErr(t, raw); code != http.StatusUnprocessableEntity || e.Field != "status_callback_url" {
		t.Fatalf("bad status_callback_url: %d %+v", code, e)
	}

	pending := a.ingest(r, "before", "trade.paid")
	a.exec(`UPDATE receivers SET status = 'disabled', disabled_at = now(), disabled_reason = 'test', failing_since = now() - interval '6 days' WHERE id = $1`, r.ID)
	a.must(http.StatusOK, "GET", path, r.APIKey, nil, &h)
	if h.Status != store.ReceiverDisabled || h.DisabledReason == nil || *h.DisabledReason != "test" || h.DisabledAt == nil || !h.Active {
		t.Fatalf("disabled receiver: %+v", h)
	}
	var summary struct{ Health healthAnswer }
	a.must(http.StatusOK, "GET", path+"/summary", r.APIKey, nil, &summary)
	if summary.Health.Status != store.ReceiverDisabled || summary.Health.DisabledReason == nil {
		t.Fatalf("summary health: %+v", summary.Health)
	}

	// Ingest while disabled: 202, recorded failed, nothing queued.
	var acc struct{ ID, Status string }
	a.must(http.StatusAccepted, "POST", "/v1/notifications", testProducerToken, map[string]any{
		"receiver_id": r.ID, "event_type": "trade.paid", "idempotency_key": "while-disabled", "payload": map[string]int{"n": 1},
	}, &acc)
	n, err := a.store.GetNotification(ctx, uuid.MustParse(acc.ID))
	if err != nil || acc.Status != store.StatusFailed || n.Status != store.StatusFailed || *n.LastError != store.DisabledError || n.NextAttemptAt != nil {
		t.Fatalf("ingest while disabled: %+v %+v %v", acc, n, err)
	}

	code, raw = a.do("POST", path+"/recover", r.APIKey, map[string]any{"since": time.Now().Add(-time.Hour).Format(time.RFC3339)})
	if e := apiErr(t, raw); code != http.StatusConflict || e.Code != "receiver_disabled" {
		t.Fatalf("recover while disabled: %d %+v", code, e)
	}
	if code, _ := a.do("POST", path+"/enable", other.APIKey, nil); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Fatalf("another receiver enabled this one: %d", code)
	}
	a.must(http.StatusOK, "POST", path+"/enable", r.APIKey, nil, &h)
	if h.Status != store.ReceiverFailing || h.DisabledAt != nil || h.DisabledReason != nil || h.FailingSince == nil || time.Since(*h.FailingSince) > time.Minute {
		t.Fatalf("enabled: %+v (the auto-disable clock starts again)", h)
	}
	var recovered struct{ Recovered int }
	a.must(http.StatusAccepted, "POST", path+"/recover", r.APIKey, map[string]any{"since": time.Now().Add(-time.Hour).Format(time.RFC3339)}, &recovered)
	if recovered.Recovered != 1 {
		t.Fatalf("recover after enable re-opened %d, want the one sent while disabled", recovered.Recovered)
	}
	if n, _ := a.store.GetNotification(ctx, pending); n.Status != store.StatusPending {
		t.Fatalf("a pending notification changed by the API alone: %s", n.Status)
	}
	a.must(http.StatusOK, "POST", path+"/enable", r.APIKey, nil, &h) // not disabled: unchanged
	if h.Status != store.ReceiverFailing {
		t.Fatalf("enabling again: %+v", h)
	}

	// The admin's PATCH active: true enables too.
	a.exec(`UPDATE receivers SET status = 'disabled', disabled_at = now(), disabled_reason = 'again' WHERE id = $1`, r.ID)
	a.must(http.StatusOK, "PATCH", path, testAdminToken, map[string]any{"active": true}, &h)
	if h.Status != store.ReceiverFailing || h.DisabledAt != nil {
		t.Fatalf("PATCH active true on a disabled receiver: %+v", h)
	}
	var enabledEvents int
	if err := a.store.Pool().QueryRow(ctx, `SELECT count(*) FROM notifications WHERE receiver_id = $1 AND event_type = 'receiver.enabled'`, op.ID).Scan(&enabledEvents); err != nil {
		t.Fatal(err)
	}
	if enabledEvents != 2 {
		t.Fatalf("operator got %d receiver.enabled events, want 2 (one per enable)", enabledEvents)
	}
	var ownEvents int
	if err := a.store.Pool().QueryRow(ctx, `SELECT count(*) FROM notifications WHERE receiver_id = $1 AND event_type = 'receiver.enabled' AND callback_url = 'https://shop.example.com/status'`, r.ID).Scan(&ownEvents); err != nil {
		t.Fatal(err)
	}
	if ownEvents != 2 {
		t.Fatalf("the receiver's status URL got %d receiver.enabled events, want 2", ownEvents)
	}
}
