// Command receiver is a minimal merchant endpoint for notifyd callbacks: it
// verifies the Standard Webhooks signature, de-duplicates on the
// notification id (deliveries are at-least-once), and answers 204.
//
//	NOTIFYD_SIGNING_SECRET=whsec_... go run ./examples/receiver -addr 127.0.0.1:9001
//
// It uses only query/webhook, like a merchant's own code would.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"sync"

	"github.com/notifyd/notifyd/query/webhook"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	flag.Parse()
	v, err := webhook.NewVerifier(os.Getenv("NOTIFYD_SIGNING_SECRET"))
	if err != nil {
		log.Fatalf("NOTIFYD_SIGNING_SECRET: %v", err)
	}
	// A real merchant keeps this in its database, in the same transaction
	// as the business change.
	var mu sync.Mutex
	seen := map[string]bool{}
	http.Handle("/notify", webhook.Handler(v, func(ctx context.Context, e *webhook.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if seen[e.ID] {
			log.Printf("duplicate %s (attempt %d): already handled", e.ID, e.Attempt)
			return nil
		}
		seen[e.ID] = true
		log.Printf("%s %s key=%s attempt=%d data=%s", e.ID, e.Type, e.IdempotencyKey, e.Attempt, e.Data)
		return nil
	}))
	log.Printf("listening on http://%s/notify", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
