package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/notifyd/notifyd/query/webhook"
)

// A receiver mounts the handler on its callback path. The function must be
// idempotent on e.ID: notifyd delivers at least once.
func ExampleHandler() {
	v, err := webhook.NewVerifier(os.Getenv("NOTIFYD_SIGNING_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/notifyd", webhook.Handler(v, func(ctx context.Context, e *webhook.Event) error {
		fmt.Println("got", e.Type, e.ID, string(e.Data))
		return nil // 204: delivered. An error answers 500 and notifyd retries.
	}))
}

// Inside an existing handler, Verify does the checking and parsing.
func ExampleVerifier_Verify() {
	v, err := webhook.NewVerifier(os.Getenv("NOTIFYD_SIGNING_SECRET"),
		// Keep accepting the previous secret while a rotation rolls out.
		webhook.WithSecrets(os.Getenv("NOTIFYD_PREVIOUS_SIGNING_SECRET")))
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/notifyd", func(w http.ResponseWriter, r *http.Request) {
		evt, err := v.Verify(r)
		switch {
		case errors.Is(err, webhook.ErrTimestampOutOfRange):
			http.Error(w, "stale", http.StatusBadRequest) // a replay, or our clock is off
			return
		case err != nil:
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		fmt.Println(evt.IdempotencyKey, evt.Attempt)
		w.WriteHeader(http.StatusNoContent)
	})
}
