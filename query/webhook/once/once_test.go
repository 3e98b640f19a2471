package once_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query/webhook"
	"github.com/notifyd/notifyd/query/webhook/once"
)

// merchant is a receiver's database: the de-duplication table and a ledger
// the business function appends to (no unique constraint of its own, so a
// second processing would show as a second row).
type merchant struct {
	pool   *pgxpool.Pool
	sqlDB  *sql.DB
	secret string
	v      *webhook.Verifier
	calls  atomic.Int64 // business function calls
}

func newMerchant(t *testing.T) *merchant {
	t.Helper()
	dsn, pool := testenv.Pool(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, once.Default.Schema()); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE ledger (notification_id text NOT NULL, amount int NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	secret, err := signing.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	return &merchant{pool: pool, sqlDB: db, secret: secret, v: v}
}

// count runs a counting query.
func (m *merchant) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := m.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// handlers are the same business function behind each driver's handler:
// it counts the call, waits (so concurrent duplicates overlap it), appends
// to the ledger, then fails if fail says so.
func (m *merchant) handlers(fail func() error) map[string]http.Handler {
	business := func() error {
		m.calls.Add(1)
		time.Sleep(20 * time.Millisecond)
		return fail()
	}
	return map[string]http.Handler{
		"pgx": once.PgxHandler(m.v, m.pool, func(ctx context.Context, tx pgx.Tx, e *webhook.Event) error {
			if _, err := tx.Exec(ctx, `INSERT INTO ledger VALUES ($1, ($2::jsonb->>'amount')::int)`, e.ID, string(e.Data)); err != nil {
				return err
			}
			return business()
		}),
		"database/sql": once.SQLHandler(m.v, m.sqlDB, func(ctx context.Context, tx *sql.Tx, e *webhook.Event) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO ledger VALUES ($1, ($2::jsonb->>'amount')::int)`, e.ID, string(e.Data)); err != nil {
				return err
			}
			return business()
		}),
	}
}

// callback is a delivery of notification id as notifyd makes it, signed
// with the official Standard Webhooks library.
func (m *merchant) callback(t *testing.T, id string) *http.Request {
	t.Helper()
	body, err := json.Marshal(map[string]any{"id": id, "type": "order.paid", "receiver_id": "r-1",
		"idempotency_key": "order-" + id, "created_at": time.Now().UTC(), "data": map[string]int{"amount": 4200}})
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(m.secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sig, err := wh.Sign(id, now, body)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/notifyd", bytes.NewReader(body))
	r.Header.Set("webhook-id", id)
	r.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	r.Header.Set("webhook-signature", sig)
	return r
}

func serve(h http.Handler, r *http.Request) int {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

func TestConcurrentDeliveriesProcessOnce(t *testing.T) {
	t.Parallel()
	m := newMerchant(t)
	for name, h := range m.handlers(func() error { return nil }) {
		t.Run(name, func(t *testing.T) {
			id := "n-concurrent-" + name
			calls := m.calls.Load()
			const deliveries = 20
			codes := make([]int, deliveries)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range deliveries {
				r := m.callback(t, id)
				wg.Go(func() {
					<-start
					codes[i] = serve(h, r)
				})
			}
			close(start)
			wg.Wait()
			for i, c := range codes {
				if c != http.StatusNoContent {
					t.Errorf("delivery %d answered %d, want 204 (first or duplicate alike)", i, c)
				}
			}
			if n := m.count(t, `SELECT count(*) FROM ledger WHERE notification_id = $1`, id); n != 1 {
				t.Errorf("ledger has %d rows for %s after %d deliveries, want 1", n, id, deliveries)
			}
			if n := m.calls.Load() - calls; n != 1 {
				t.Errorf("business function called %d times, want 1", n)
			}
			if n := m.count(t, `SELECT count(*) FROM notifyd_received WHERE notification_id = $1`, id); n != 1 {
				t.Errorf("de-duplication table has %d rows for %s, want 1", n, id)
			}
		})
	}
}

func TestFailedBusinessRecordsNothing(t *testing.T) {
	t.Parallel()
	m := newMerchant(t)
	var failing atomic.Bool
	for name, h := range m.handlers(func() error {
		if failing.Load() {
			return errors.New("ledger service down")
		}
		return nil
	}) {
		t.Run(name, func(t *testing.T) {
			id := "n-fails-first-" + name
			failing.Store(true)
			if c := serve(h, m.callback(t, id)); c != http.StatusInternalServerError {
				t.Fatalf("failing business function: answered %d, want 500 so that notifyd retries", c)
			}
			if n := m.count(t, `SELECT count(*) FROM ledger WHERE notification_id = $1`, id); n != 0 {
				t.Errorf("ledger has %d rows after the failure, want 0 (rolled back)", n)
			}
			if n := m.count(t, `SELECT count(*) FROM notifyd_received WHERE notification_id = $1`, id); n != 0 {
				t.Errorf("id recorded despite the failure: the retry would be taken for a duplicate")
			}
			// notifyd's retry is processed.
			failing.Store(false)
			calls := m.calls.Load()
			if c := serve(h, m.callback(t, id)); c != http.StatusNoContent {
				t.Fatalf("retry: answered %d, want 204", c)
			}
			if n := m.count(t, `SELECT count(*) FROM ledger WHERE notification_id = $1`, id); n != 1 || m.calls.Load()-calls != 1 {
				t.Errorf("after the retry: %d ledger rows, %d calls; want 1 and 1", n, m.calls.Load()-calls)
			}
		})
	}
}

func TestBadSignatureTouchesNothing(t *testing.T) {
	t.Parallel()
	m := newMerchant(t)
	h := m.handlers(func() error { return nil })["pgx"]
	r := m.callback(t, "n-forged")
	r.Header.Set("webhook-signature", "v1,"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if c := serve(h, r); c != http.StatusBadRequest {
		t.Fatalf("forged callback answered %d, want 400", c)
	}
	if m.calls.Load() != 0 || m.count(t, `SELECT count(*) FROM notifyd_received`) != 0 {
		t.Error("a forged callback reached the business function or the table")
	}
}

func TestRecordInOwnTransaction(t *testing.T) {
	t.Parallel()
	m := newMerchant(t)
	ctx := context.Background()
	tx, err := m.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for i, want := range []bool{true, false} {
		first, err := once.RecordPgx(ctx, tx, "n-1")
		if err != nil || first != want {
			t.Errorf("RecordPgx #%d = %v, %v; want %v", i+1, first, err, want)
		}
	}
	if _, err := once.RecordPgx(ctx, tx, ""); !errors.Is(err, once.ErrNoID) {
		t.Errorf("empty id: %v, want ErrNoID", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Rolled back with the transaction: the id is new again.
	stx, err := m.sqlDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stx.Rollback()
	if first, err := once.RecordSQL(ctx, stx, "n-1"); err != nil || !first {
		t.Errorf("RecordSQL after the rollback = %v, %v; want first", first, err)
	}
}

func TestCleanupKeepsRecentIDs(t *testing.T) {
	t.Parallel()
	m := newMerchant(t)
	ctx := context.Background()
	// More old rows than one batch deletes, a few recent ones, and one just
	// inside the window.
	if _, err := m.pool.Exec(ctx, `INSERT INTO notifyd_received (notification_id, received_at)
		SELECT 'old-' || i, now() - interval '40 days' FROM generate_series(1, 2345) i`); err != nil {
		t.Fatal(err)
	}
	if _, err := m.pool.Exec(ctx, `INSERT INTO notifyd_received (notification_id, received_at)
		VALUES ('new-1', now()), ('new-2', now() - interval '1 day'), ('edge', now() - interval '34 days')`); err != nil {
		t.Fatal(err)
	}
	deleted, err := once.CleanupPgx(ctx, m.pool, once.DefaultKeep)
	if err != nil || deleted != 2345 {
		t.Fatalf("CleanupPgx = %d, %v; want 2345 deleted", deleted, err)
	}
	if n := m.count(t, `SELECT count(*) FROM notifyd_received`); n != 3 {
		t.Errorf("%d rows left, want the 3 within %s", n, once.DefaultKeep)
	}
	deleted, err = once.CleanupSQL(ctx, m.sqlDB, 24*time.Hour+time.Hour)
	if err != nil || deleted != 1 {
		t.Errorf("CleanupSQL(25h) = %d, %v; want 1 (edge)", deleted, err)
	}
	if _, err := once.CleanupPgx(ctx, m.pool, 0); err == nil {
		t.Error("keep 0 accepted: it would forget every id")
	}
}

func TestTableNames(t *testing.T) {
	t.Parallel()
	m := newMerchant(t)
	ctx := context.Background()
	if _, err := m.pool.Exec(ctx, `CREATE SCHEMA billing`); err != nil {
		t.Fatal(err)
	}
	tbl, err := once.NewTable("billing.notifyd_seen")
	if err != nil {
		t.Fatal(err)
	}
	// The DDL runs at every start: twice is fine.
	for range 2 {
		if _, err := m.pool.Exec(ctx, tbl.Schema()); err != nil {
			t.Fatalf("schema of %s: %v", tbl.Name(), err)
		}
	}
	processed, err := tbl.ProcessPgx(ctx, m.pool, "n-7", func(pgx.Tx) error { return nil })
	if err != nil || !processed {
		t.Fatalf("ProcessPgx = %v, %v", processed, err)
	}
	if n := m.count(t, `SELECT count(*) FROM billing.notifyd_seen WHERE notification_id = 'n-7'`); n != 1 {
		t.Errorf("billing.notifyd_seen has %d rows", n)
	}
	for _, bad := range []string{"", "orders; DROP TABLE orders", `"quoted"`, "a.b.c", "1abc", "über"} {
		if _, err := once.NewTable(bad); err == nil {
			t.Errorf("NewTable(%q) accepted", bad)
		}
	}
	if once.Default.Name() != once.DefaultTable {
		t.Errorf("Default.Name() = %q", once.Default.Name())
	}
}
