package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/notifier"
)

// A producer writes the notification in the same transaction as its own
// data, so it is sent if and only if that transaction commits; a relay
// beside the producer moves committed rows to notifyd.
func ExampleClient_EnqueueTx() {
	env := startNotifyd("ExampleClient_EnqueueTx") // notifyd and a receiver, in process
	defer env.stop()
	ctx := context.Background()

	db, err := pgxpool.New(ctx, env.producerDB) // the producer's own database
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	schema, err := notifier.OutboxSchema("") // normally run by the producer's migrations
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec(ctx, schema); err != nil {
		log.Fatal(err)
	}

	client, err := notifier.New(asynq.RedisClientOpt{Addr: env.redisAddr, DB: env.redisDB})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// The relay lets go of a row once notifyd has recorded the notification
	// in its own database (read access to it is enough).
	relay := notifier.NewRelay(db, client, notifier.WithRelayConfirmer(notifier.DatabaseConfirmer(env.notifydDB)))
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(relayCtx) }()
	defer func() { stopRelay(); <-relayDone }()

	tx, err := db.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// … the producer's own writes in tx …
	_, err = client.EnqueueTx(ctx, tx, notifier.Notification{
		ReceiverID:     env.receiverID,
		EventType:      "order.shipped",
		IdempotencyKey: "order-1001-shipped",
		Payload:        json.RawMessage(`{"carrier":"dhl"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}

	e := env.nextCallback() // what the receiver's endpoint got
	fmt.Println(e.Type, e.IdempotencyKey, string(e.Data))
	// Output:
	// order.shipped order-1001-shipped {"carrier":"dhl"}
}
