package notifier_test

import (
	"context"
	"encoding/json"
	"log"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/notifier"
)

// A producer marks an order paid and notifies the merchant in one
// transaction of its own database; a relay in the same process moves the
// notification to notifyd once the transaction has committed.
func ExampleClient_EnqueueTx() {
	ctx := context.Background()
	db, err := pgxpool.New(ctx, "postgres://app@db.internal/shop")
	if err != nil {
		log.Fatal(err)
	}
	client, err := notifier.New(asynq.RedisClientOpt{Addr: "redis.internal:6379"})
	if err != nil {
		log.Fatal(err)
	}
	// Once, at start-up (or ship notifier/outbox.sql with your migrations).
	if err := notifier.MigrateOutbox(ctx, db, ""); err != nil {
		log.Fatal(err)
	}
	// The relay lets go of a row once notifyd has the notification in its
	// own database (read access to it is enough).
	notifyd, err := pgxpool.New(ctx, "postgres://relay-reader@notifyd-db.internal/notifyd")
	if err != nil {
		log.Fatal(err)
	}
	relay := notifier.NewRelay(db, client, notifier.WithRelayConfirmer(notifier.DatabaseConfirmer(notifyd)))
	go func() {
		if err := relay.Run(ctx); err != nil {
			log.Fatal(err)
		}
	}()

	tx, err := db.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE orders SET status = 'paid' WHERE id = $1`, "order-42"); err != nil {
		log.Fatal(err)
	}
	if _, err := client.EnqueueTx(ctx, tx, notifier.Notification{
		ReceiverID:     "0b5e0d4c-2d1f-4d5b-9a55-6a3c8e1f7b20",
		EventType:      "trade.paid",
		IdempotencyKey: "order-42",
		Payload:        json.RawMessage(`{"order":"order-42","amount":4200}`),
	}); err != nil {
		log.Fatal(err) // invalid notification: the order is not marked paid either
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
}
