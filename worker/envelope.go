package worker

import (
	"time"

	"github.com/notifyd/notifyd/internal/envelope"
	"github.com/notifyd/notifyd/internal/tasks"
)

// Envelope is the JSON body every receiver gets (internal/envelope).
type Envelope = envelope.Envelope

func envelopeOf(d *tasks.Deliver, created time.Time) ([]byte, error) {
	return Envelope{
		ID: d.ID.String(), Type: d.EventType, ReceiverID: d.ReceiverID.String(),
		IdempotencyKey: d.IdempotencyKey, CreatedAt: created, Data: d.Payload,
	}.Encode()
}
