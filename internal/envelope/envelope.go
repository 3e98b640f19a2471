// Package envelope is what a receiver gets for one notification: the JSON
// body and the signed headers. It is the same whether a worker POSTs it to
// a callback URL or the API offers it on a pull receiver's event stream, so
// a receiver verifies and parses both with the same code.
package envelope

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/signing"
)

// HeaderAttempt carries the automatic attempt number (1-based; 0 for a
// manual redelivery) so a receiver can see a retry for what it is.
const HeaderAttempt = "Notifyd-Attempt"

// Envelope is the JSON body every receiver gets.
type Envelope struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	ReceiverID     string          `json:"receiver_id"`
	IdempotencyKey string          `json:"idempotency_key"`
	CreatedAt      time.Time       `json:"created_at"`
	Data           json.RawMessage `json:"data"`
}

// Encode returns the body: the envelope as compact JSON, created_at in UTC.
func (e Envelope) Encode() ([]byte, error) {
	e.CreatedAt = e.CreatedAt.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", e.ID, err)
	}
	return b, nil
}

// Headers are the headers of a delivery of body signed at ts, in their
// canonical spelling: Content-Type, the three Standard Webhooks headers
// and the attempt number. (A worker writes the same set straight into its
// request, on its hot path.)
func Headers(signer *signing.Signer, id string, ts time.Time, body []byte, attempt int) map[string]string {
	return map[string]string{
		"Content-Type":      "application/json",
		"Webhook-Id":        id,
		"Webhook-Timestamp": strconv.FormatInt(ts.Unix(), 10),
		"Webhook-Signature": signer.Header(id, ts, body),
		HeaderAttempt:       strconv.Itoa(attempt),
	}
}
