package worker

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/notifyd/notifyd/internal/tasks"
)

// Envelope is the JSON body every receiver gets.
type Envelope struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	ReceiverID     string          `json:"receiver_id"`
	IdempotencyKey string          `json:"idempotency_key"`
	CreatedAt      time.Time       `json:"created_at"`
	Data           json.RawMessage `json:"data"`
}

func envelope(d *tasks.Deliver, created time.Time) ([]byte, error) {
	b, err := json.Marshal(Envelope{
		ID: d.ID.String(), Type: d.EventType, ReceiverID: d.ReceiverID.String(),
		IdempotencyKey: d.IdempotencyKey, CreatedAt: created.UTC(), Data: d.Payload,
	})
	if err != nil {
		return nil, fmt.Errorf("encode envelope %s: %w", d.ID, err)
	}
	return b, nil
}
