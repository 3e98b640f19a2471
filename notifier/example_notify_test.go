package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

	"github.com/notifyd/notifyd/notifier"
)

// A producer hands a notification to notifyd through the Redis its workers
// read; notifyd calls the receiver back.
func ExampleClient_Notify() {
	env := startNotifyd("ExampleClient_Notify") // notifyd and a receiver, in process
	defer env.stop()

	// notifyd's own NOTIFYD_REDIS_URL: the same Redis and database index.
	redisURL := fmt.Sprintf("redis://%s/%d", env.redisAddr, env.redisDB)
	client, err := notifier.NewFromURL(redisURL)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	_, err = client.Notify(context.Background(), notifier.Notification{
		ReceiverID:     env.receiverID,
		EventType:      "order.paid",
		IdempotencyKey: "order-1001", // a repeat with the same key is not sent twice
		Payload:        json.RawMessage(`{"amount":4200}`),
	})
	if err != nil {
		log.Fatal(err)
	}

	e := env.nextCallback() // what the receiver's endpoint got
	fmt.Println(e.Type, e.IdempotencyKey, string(e.Data))
	// Output:
	// order.paid order-1001 {"amount":4200}
}
