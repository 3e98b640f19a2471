package once_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query/webhook"
	"github.com/notifyd/notifyd/query/webhook/once"
)

// The handler records each notification id in the business transaction:
// the same notification delivered twice (a retry after a lost answer, a
// reconciliation) pays the order once.
func ExamplePgxHandler() {
	tb := testenv.NewExampleTB("ExamplePgxHandler")
	defer tb.Close()
	_, pool := testenv.Pool(tb) // the merchant's own database; in production pgxpool.New(ctx, url)
	secret, _ := signing.NewSecret()
	ctx := context.Background()

	// Once at start-up: the de-duplication table (`notifyctl receiver-schema` prints it).
	if _, err := pool.Exec(ctx, once.Default.Schema()+`CREATE TABLE orders (id text PRIMARY KEY, paid_cents int NOT NULL DEFAULT 0)`); err != nil {
		log.Fatal(err)
	}
	v, err := webhook.NewVerifier(secret) // os.Getenv("NOTIFYD_SIGNING_SECRET")
	if err != nil {
		log.Fatal(err)
	}
	h := once.PgxHandler(v, pool, func(ctx context.Context, tx pgx.Tx, e *webhook.Event) error {
		var p struct {
			Order  string `json:"order"`
			Amount int    `json:"amount"`
		}
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return err
		}
		fmt.Println("paying", p.Order)
		_, err := tx.Exec(ctx, `INSERT INTO orders VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET paid_cents = orders.paid_cents + $2`, p.Order, p.Amount)
		return err
	})
	// In production: http.Handle("/notifyd", h). Here: the same callback twice.
	s, _ := webhook.NewSigner(secret)
	e := &webhook.Event{ID: "0b7c6b0e-64a4-5f6f-9a53-8d1f3f0a7c11", Type: "order.paid", IdempotencyKey: "order-1042",
		CreatedAt: time.Now(), Data: json.RawMessage(`{"order":"1042","amount":4200}`), Attempt: 1}
	for range 2 {
		req, _ := s.Request(ctx, "http://merchant.example/notifyd", e, time.Now())
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		fmt.Println("answer", w.Code)
		e.Attempt++
	}
	var paid int
	_ = pool.QueryRow(ctx, `SELECT paid_cents FROM orders WHERE id = '1042'`).Scan(&paid)
	fmt.Println("paid", paid)
	// Output:
	// paying 1042
	// answer 204
	// answer 204
	// paid 4200
}
