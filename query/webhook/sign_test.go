package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/notifyd/notifyd/query/webhook"
)

// What the Signer builds verifies with the official library and comes back
// from Verify as the event it was made of.
func TestSignerRequestVerifies(t *testing.T) {
	t.Parallel()
	secret, _ := newSecret(t)
	s, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	in := &webhook.Event{ID: msgID, Type: "trade.paid", ReceiverID: "r-1", IdempotencyKey: "order-7",
		CreatedAt: time.Date(2026, 3, 1, 10, 0, 0, 123456000, time.FixedZone("CET", 3600)),
		Data:      json.RawMessage(`{"amount":42}`), Reconciled: true}
	for _, reconciled := range []bool{true, false} {
		in.Reconciled = reconciled
		req, err := s.Request(context.Background(), "http://127.0.0.1:1/notifyd", in, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(req.Body)
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, req.Header); err != nil {
			t.Fatalf("official library rejects the signature: %v", err)
		}
		v, err := webhook.NewVerifier(secret)
		if err != nil {
			t.Fatal(err)
		}
		out, err := v.VerifyBody(req.Header, body)
		if err != nil {
			t.Fatal(err)
		}
		if out.ID != in.ID || out.Type != in.Type || out.ReceiverID != in.ReceiverID || out.IdempotencyKey != in.IdempotencyKey ||
			!out.CreatedAt.Equal(in.CreatedAt) || string(out.Data) != string(in.Data) || out.Reconciled != reconciled || out.Attempt != 0 {
			t.Errorf("verified %+v, want %+v", out, in)
		}
		if req.Header.Get("webhook-id") != msgID || req.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers %v", req.Header)
		}
	}
	if _, err := webhook.NewSigner("whsec_short"); err == nil {
		t.Error("malformed secret accepted")
	}
}
