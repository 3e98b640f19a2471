package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/notifyd/notifyd/query/client"
)

// A receiver checks what became of the notification for one of its orders.
func Example() {
	env := startNotifyd("Example", "order-1042") // notifyd in process; order-1042 was delivered
	defer env.stop()

	ctx := context.Background()
	c := client.New(env.url, env.receiverToken) // e.g. os.Getenv("NOTIFYD_TOKEN")
	for _, key := range []string{"order-1042", "order-1043"} {
		n, err := c.GetByKey(ctx, key, nil)
		switch {
		case errors.Is(err, client.ErrNotFound):
			fmt.Println(key, "never sent")
			continue
		case err != nil:
			log.Fatal(err)
		}
		fmt.Println(key, n.Status, "after", n.Attempts, "attempt(s)")
		for _, a := range n.DeliveryAttempts {
			fmt.Println("  attempt", a.Attempt, a.StatusCode, a.Outcome)
		}
	}
	// Output:
	// order-1042 delivered after 1 attempt(s)
	//   attempt 1 200 success
	// order-1043 never sent
}

// All pages through every delivered notification of the last day, oldest
// first, fetching pages as the loop goes.
func ExampleClient_All() {
	env := startNotifyd("ExampleClient_All", "order-1", "order-2", "order-3") // notifyd in process; three delivered
	defer env.stop()

	ctx := context.Background()
	c := client.New(env.url, env.receiverToken)
	for n, err := range c.All(ctx, client.ListParams{
		Status:       client.StatusDelivered,
		CreatedAfter: time.Now().Add(-24 * time.Hour),
		Order:        client.Ascending,
		Limit:        2, // small to show the paging; up to 500
	}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(n.IdempotencyKey, n.Status)
	}
	// Output:
	// order-1 delivered
	// order-2 delivered
	// order-3 delivered
}

// Send is idempotent by receiver and key: repeating it after a timeout is safe.
func ExampleClient_Send() {
	env := startNotifyd("ExampleClient_Send") // notifyd in process, and a receiver of it
	defer env.stop()

	ctx := context.Background()
	c := client.New(env.url, env.producerToken) // e.g. os.Getenv("NOTIFYD_PRODUCER_TOKEN")
	for range 2 {
		a, err := c.Send(ctx, client.NewNotification{
			ReceiverID:     env.receiverID,
			EventType:      "trade.paid",
			IdempotencyKey: "order-1042",
			Payload:        json.RawMessage(`{"order":"1042","amount":4200}`),
		})
		var ae *client.APIError
		switch {
		case errors.As(err, &ae) && ae.Temporary():
			log.Printf("notifyd unavailable (%d), retry later", ae.StatusCode)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Println("replayed:", a.Replayed)
		}
	}
	// Output:
	// replayed: false
	// replayed: true
}
