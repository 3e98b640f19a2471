package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// TestReceiverHealthCached: the receivers list counts each receiver's
// notifications of the last 24 h (an older one left out, the failing
// streak after the last success); the counts are cached like the
// overview's figures, while the receivers themselves (a new one, one
// deactivated) show at once.
func TestReceiverHealthCached(t *testing.T) {
	ctx := context.Background()
	dbURL := testenv.Database(t)
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	newReceiver := func(name string) uuid.UUID {
		t.Helper()
		r := &store.Receiver{ID: uuid.New(), Name: name, CallbackURL: "http://127.0.0.1:1/", SigningSecret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
		if err := st.CreateReceiver(ctx, r, []byte(uuid.NewString())); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	// notification records one with the given status, attempts and age.
	notification := func(rid uuid.UUID, status string, attempts int, age time.Duration) {
		t.Helper()
		id := uuid.New()
		if _, _, err := st.InsertNotification(ctx, store.NewNotification{ID: id, ReceiverID: rid, EventType: "e",
			IdempotencyKey: id.String(), Payload: []byte(`{}`), MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
		exec(`UPDATE notifications SET status = $2::notification_status, attempts = $3, created_at = now() - $4::interval,
			delivered_at = CASE WHEN $2::text = 'delivered' THEN now() - $4::interval END WHERE id = $1`,
			id, status, attempts, age.String())
	}
	rid := newReceiver("shop")
	notification(rid, "delivered", 1, 25*time.Hour) // outside the window
	notification(rid, "delivered", 1, 3*time.Minute)
	notification(rid, "failed", 3, 2*time.Minute)
	notification(rid, "pending", 0, time.Minute) // not attempted yet: no streak

	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := New(Config{Store: st, AdminToken: "t", Now: clock})

	health, err := st.ReceiversHealth(ctx, clock().Add(-healthWindow))
	if err != nil {
		t.Fatal(err)
	}
	h := health[rid]
	if h.Delivered != 1 || h.Failed != 1 || h.Pending != 1 || h.FailingInARow != 1 || h.LastSuccess == nil {
		t.Fatalf("health: %+v", h)
	}

	page := func() string {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/console/receivers", nil)
		if err := c.listReceivers(rec, req, &session{Role: roleOperator}); err != nil {
			t.Fatal(err)
		}
		return rec.Body.String()
	}
	if p := page(); !strings.Contains(p, "<td>1 / 1 / 1</td>") || !strings.Contains(p, "<td>active</td>") ||
		!strings.Contains(p, "Health over 24 h as of "+when(clock())) {
		t.Fatalf("first page:\n%s", p)
	}

	exec(`UPDATE receivers SET active = false WHERE id = $1`, rid)
	newReceiver("later")
	notification(rid, "failed", 1, 0)
	advance(figuresTTL - time.Second)
	p := page()
	if !strings.Contains(p, "disabled") || !strings.Contains(p, ">later</a>") {
		t.Errorf("the list does not show the receivers as they are now:\n%s", p)
	}
	if !strings.Contains(p, "<td>1 / 1 / 1</td>") || !strings.Contains(p, "<td>0 / 0 / 0</td>") {
		t.Errorf("within the TTL the health figures were recomputed:\n%s", p)
	}

	advance(2 * time.Second)
	if p := page(); !strings.Contains(p, "<td>1 / 1 / 1</td>") {
		t.Errorf("a stale page waited for the refresh instead of reading the old figures:\n%s", p)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(page(), "<td>1 / 2 / 1</td>") {
		if time.Now().After(deadline) {
			t.Fatalf("no refreshed health figures:\n%s", page())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
