// Command go is a notifyd receiver in Go: query/webhook verifies the
// Standard Webhooks signature, and query/webhook/once records the
// notification id and makes the business change in ONE PostgreSQL
// transaction, so a notification delivered twice (a retry after a lost
// answer, a redelivery, `notifyctl reconcile`) is processed once.
//
//	NOTIFYD_SIGNING_SECRET=whsec_... DATABASE_URL=postgres://... PORT=9001 go run ./examples/receivers/go
//
// Callbacks go to http://127.0.0.1:$PORT/notifyd. It uses only
// query/webhook and its once package, like a merchant's own code would.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/query/webhook"
	"github.com/notifyd/notifyd/query/webhook/once"
)

// payments stands for the merchant's business tables.
const payments = `CREATE TABLE IF NOT EXISTS payments (
    idempotency_key text NOT NULL,
    event_type      text NOT NULL,
    data            jsonb NOT NULL
)`

func main() {
	ctx := context.Background()
	v, err := webhook.NewVerifier(os.Getenv("NOTIFYD_SIGNING_SECRET"))
	if err != nil {
		log.Fatalf("NOTIFYD_SIGNING_SECRET: %v", err)
	}
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatalf("DATABASE_URL: %v", err)
	}
	if _, err := pool.Exec(ctx, once.Default.Schema()+";"+payments); err != nil {
		log.Fatalf("schema: %v", err)
	}
	go cleanup(pool)

	http.Handle("/notifyd", once.PgxHandler(v, pool, func(ctx context.Context, tx pgx.Tx, e *webhook.Event) error {
		// Only the first delivery of e.ID gets here; an error rolls back the
		// record too, answers 500, and notifyd retries.
		_, err := tx.Exec(ctx, `INSERT INTO payments VALUES ($1, $2, $3)`, e.IdempotencyKey, e.Type, e.Data)
		if err == nil {
			fmt.Printf("processed %s %s (%s)\n", e.ID, e.Type, source(e))
		}
		return err
	}, webhook.WithErrorLog(func(r *http.Request, err error) { log.Printf("callback refused: %v", err) })))
	addr := "127.0.0.1:" + envOr("PORT", "9001")
	fmt.Printf("listening on http://%s/notifyd\n", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}

// cleanup forgets ids older than notifyd's retention, once a day.
func cleanup(pool *pgxpool.Pool) {
	for ; ; time.Sleep(24 * time.Hour) {
		if n, err := once.CleanupPgx(context.Background(), pool, once.DefaultKeep); err != nil {
			log.Printf("cleanup: %v", err)
		} else if n > 0 {
			log.Printf("cleanup: forgot %d notification ids", n)
		}
	}
}

func source(e *webhook.Event) string {
	if e.Reconciled {
		return "reconcile"
	}
	return "callback"
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
