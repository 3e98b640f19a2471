package notifier_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"sort"

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

// A producer that already holds several notifications hands them in at
// once: those that share a queue travel in one task. Each item has its own
// result; a repeat of a key is success without a second delivery.
func ExampleClient_NotifyMany() {
	env := startNotifyd("ExampleClient_NotifyMany")
	defer env.stop()

	client, err := notifier.NewFromURL(fmt.Sprintf("redis://%s/%d", env.redisAddr, env.redisDB))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	results, err := client.NotifyMany(context.Background(), []notifier.Notification{
		{ReceiverID: env.receiverID, EventType: "order.paid", IdempotencyKey: "order-2001", Payload: json.RawMessage(`{"amount":100}`)},
		{ReceiverID: env.receiverID, EventType: "order.paid", IdempotencyKey: "order-2002", Payload: json.RawMessage(`{"amount":200}`)},
		{ReceiverID: env.receiverID, EventType: "order.paid", IdempotencyKey: "order-2001", Payload: json.RawMessage(`{"amount":100}`)},
		{ReceiverID: env.receiverID, EventType: "", IdempotencyKey: "order-2003", Payload: json.RawMessage(`{}`)},
	})
	for i, r := range results {
		var invalid *notifier.ValidationError
		switch {
		case errors.As(r.Err, &invalid):
			fmt.Printf("%d: refused, field %s\n", i, invalid.Field)
		case r.Err != nil:
			fmt.Printf("%d: %v\n", i, r.Err)
		default:
			fmt.Printf("%d: queued %v\n", i, r.Queued)
		}
	}
	fmt.Println("error:", errors.Is(err, notifier.ErrInvalidNotification))

	got := []string{}
	for range 2 {
		e := env.nextCallback()
		got = append(got, e.IdempotencyKey)
	}
	sort.Strings(got)
	fmt.Println(got)
	// Output:
	// 0: queued true
	// 1: queued true
	// 2: queued false
	// 3: refused, field event_type
	// error: true
	// [order-2001 order-2002]
}
