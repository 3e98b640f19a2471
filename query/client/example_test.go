package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/notifyd/notifyd/query/client"
)

// A receiver checks what became of the notification for one of its orders.
func Example() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv("NOTIFYD_TOKEN"))
	n, err := c.GetByKey(ctx, "order-1042", nil)
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("never sent")
		return
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(n.Status, n.Attempts, n.LastError)
	for _, a := range n.DeliveryAttempts {
		fmt.Println(a.Attempt, a.StartedAt, a.StatusCode, a.Outcome)
	}
}

// All pages through every failed notification of the last day, oldest first.
func ExampleClient_All() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv("NOTIFYD_TOKEN"))
	for n, err := range c.All(ctx, client.ListParams{
		Status:       client.StatusFailed,
		CreatedAfter: time.Now().Add(-24 * time.Hour),
		Order:        client.Ascending,
		Limit:        200,
	}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(n.ID, n.IdempotencyKey, n.LastError)
	}
}

// Send is idempotent by receiver and key: repeating it after a timeout is safe.
func ExampleClient_Send() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv("NOTIFYD_PRODUCER_TOKEN"))
	a, err := c.Send(ctx, client.NewNotification{
		ReceiverID:     "6e0f3a52-6c6f-4b7a-9d55-5a1b2f1f0a01",
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
		fmt.Println(a.ID, a.Status, a.Replayed)
	}
}
