package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/signing"
)

// HeaderReconcile marks a request made by `notifyctl reconcile` rather than
// by notifyd's worker. Like HeaderAttempt it is not signed: for logs only.
const HeaderReconcile = "Notifyd-Reconcile"

// Signer builds callbacks as notifyd's worker sends them: the envelope as
// the body, signed with the receiver's secret. `notifyctl reconcile` uses it
// to hand reconciled notifications to the receiver's own callback handler,
// so business logic is written once; a receiver's tests can use it to call
// their handler.
type Signer struct{ s *signing.Signer }

// NewSigner returns a signer for a receiver's signing secret ("whsec_…").
func NewSigner(secret string) (*Signer, error) {
	key, err := signing.ParseSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Signer{s: signing.NewSigner(key)}, nil
}

// body is e as the JSON envelope a callback carries.
func (s *Signer) body(e *Event) ([]byte, error) {
	b, err := json.Marshal(envelope{
		ID: e.ID, Type: e.Type, ReceiverID: e.ReceiverID, IdempotencyKey: e.IdempotencyKey,
		CreatedAt: e.CreatedAt.UTC(), Data: e.Data,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: encode notification %s: %w", e.ID, err)
	}
	return b, nil
}

// Request is a POST of e to url, signed at now with webhook-id e.ID (the
// notification id, as the worker signs it), carrying e.Attempt in
// Notifyd-Attempt and, if e.Reconciled, Notifyd-Reconcile: 1.
func (s *Signer) Request(ctx context.Context, url string, e *Event, now time.Time) (*http.Request, error) {
	body, err := s.body(e)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("webhook: request: %w", err)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set(signing.HeaderID, e.ID)
	h.Set(signing.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	h.Set(signing.HeaderSignature, s.s.Header(e.ID, now, body))
	h.Set(HeaderAttempt, strconv.Itoa(e.Attempt))
	if e.Reconciled {
		h.Set(HeaderReconcile, "1")
	}
	return req, nil
}
