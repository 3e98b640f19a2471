package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/notifyd/notifyd/query/webhook"
)

// A receiver mounts the handler on its callback path. The function must be
// idempotent on e.ID: notifyd delivers at least once.
func ExampleHandler() {
	env := startNotifyd("ExampleHandler") // notifyd in process, and a receiver of it
	defer env.stop()

	v, err := webhook.NewVerifier(env.signingSecret) // e.g. os.Getenv("NOTIFYD_SIGNING_SECRET")
	if err != nil {
		log.Fatal(err)
	}
	h := webhook.Handler(v, func(ctx context.Context, e *webhook.Event) error {
		fmt.Println("got", e.Type, e.IdempotencyKey, string(e.Data))
		return nil // 204: delivered. An error answers 500 and notifyd retries.
	})
	env.serve(h) // in production: http.Handle("/notifyd", h)

	env.send("order.paid", "order-1042", `{"amount":4200}`)
	// Output:
	// got order.paid order-1042 {"amount":4200}
}

// Inside an existing handler, Verify does the checking and parsing. While a
// secret rotation rolls out, webhook.WithSecrets keeps the previous secret
// accepted too.
func ExampleVerifier_Verify() {
	env := startNotifyd("ExampleVerifier_Verify") // notifyd in process, and a receiver of it
	defer env.stop()

	v, err := webhook.NewVerifier(env.signingSecret)
	if err != nil {
		log.Fatal(err)
	}
	env.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evt, err := v.Verify(r)
		switch {
		case errors.Is(err, webhook.ErrTimestampOutOfRange):
			http.Error(w, "stale", http.StatusBadRequest) // a replay, or our clock is off
			return
		case err != nil:
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		fmt.Println(evt.Type, evt.IdempotencyKey, "attempt", evt.Attempt)
		w.WriteHeader(http.StatusNoContent)
	}))

	env.send("order.paid", "order-1042", `{"amount":4200}`)
	// Output:
	// order.paid order-1042 attempt 1
}
