package once_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/query/webhook"
	"github.com/notifyd/notifyd/query/webhook/once"
)

// A receiver that commits and then dies before answering: notifyd sees a
// dropped connection, retries, and the retry is recognised as a duplicate.
func TestCrashBetweenCommitAndAnswer(t *testing.T) {
	t.Parallel()
	m := newMerchant(t)
	s := notifydtest.Start(t)

	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	r := s.CreateReceiver("http://"+srv.Listener.Addr().String()+"/notifyd", nil)
	v, err := webhook.NewVerifier(r.SigningSecret)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	h := once.PgxHandler(v, m.pool, func(ctx context.Context, tx pgx.Tx, e *webhook.Event) error {
		calls.Add(1)
		_, err := tx.Exec(ctx, `INSERT INTO ledger VALUES ($1, ($2::jsonb->>'amount')::int)`, e.ID, string(e.Data))
		return err
	})
	var requests atomic.Int64
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if requests.Add(1) == 1 {
			// The handler runs to the end (its transaction commits), then
			// the process "crashes": the connection drops with no answer.
			h.ServeHTTP(httptest.NewRecorder(), req)
			panic(http.ErrAbortHandler)
		}
		h.ServeHTTP(w, req)
	})
	srv.Start()

	var sent struct{ ID string }
	s.Call(http.MethodPost, "/v1/notifications", apitest.ProducerToken, map[string]any{
		"receiver_id": r.ID, "event_type": "order.paid", "idempotency_key": "order-1", "payload": map[string]int{"amount": 4200},
	}, http.StatusAccepted, &sent)
	s.WaitStatus(60*time.Second, "delivered", sent.ID)

	if n := requests.Load(); n != 2 {
		t.Errorf("receiver got %d requests, want 2 (the lost answer, then the retry)", n)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("business function called %d times, want 1: the retry is a duplicate", n)
	}
	if n := m.count(t, `SELECT count(*) FROM ledger WHERE notification_id = $1`, sent.ID); n != 1 {
		t.Errorf("ledger has %d rows, want 1", n)
	}
	var attempts struct {
		Data []struct{ Outcome string }
	}
	s.Call(http.MethodGet, "/v1/notifications/"+sent.ID+"/attempts", apitest.AdminToken, nil, http.StatusOK, &attempts)
	if a := attempts.Data; len(a) != 2 || a[0].Outcome == "success" || a[1].Outcome != "success" {
		t.Errorf("attempts %+v, want a failed one (no answer) and then a success", a)
	}
}
