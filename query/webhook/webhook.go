// Package webhook verifies notifyd's callbacks on the receiving side. A Go
// receiver needs three lines:
//
//	v, err := webhook.NewVerifier(os.Getenv("NOTIFYD_SIGNING_SECRET"))
//	…
//	http.Handle("/notifyd", webhook.Handler(v, func(ctx context.Context, e *webhook.Event) error {
//		return orders.MarkPaid(ctx, e.ID, e.Data) // must be idempotent on e.ID
//	}))
//
// or, inside an existing handler, evt, err := v.Verify(r).
//
// Callbacks are signed per Standard Webhooks (https://www.standardwebhooks.com):
// an HMAC-SHA256 over the webhook-id, webhook-timestamp and the exact body.
// Verify checks the signature against every configured secret (so a secret
// can be rotated without dropping callbacks) and refuses timestamps more than
// the tolerance (5 minutes) away from now, which bounds replays.
//
// notifyd delivers at least once: the same Event.ID can arrive more than
// once (retries after a lost answer, manual redeliveries, reconciliation), so
// the handler must be idempotent on it. Package query/webhook/once does that
// for a handler whose effects are in PostgreSQL: it records Event.ID in the
// handler's own transaction, and a duplicate changes nothing.
//
// `notifyctl reconcile --handler-url` POSTs the same envelope, signed the
// same way with the receiver's signing secret, to the same handler: one
// handler serves callbacks and reconciliation (Event.Reconciled tells them
// apart, for logs).
//
// Receivers import this package: it must not depend on notifyd's server
// side (the API, the store, Asynq), only on the signature scheme.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/notifyd/notifyd/internal/signing"
)

// Errors Verify returns. The first three are internal/signing's sentinels,
// so errors.Is works with either name.
var (
	// ErrInvalidSignature: no signature matches any configured secret (a
	// forgery, a tampered body, or the wrong secret).
	ErrInvalidSignature = signing.ErrInvalidSignature
	// ErrTimestampOutOfRange: correctly signed, but the timestamp is outside
	// the tolerance (a replay, or a wrong clock).
	ErrTimestampOutOfRange = signing.ErrTimestampOutOfRange
	// ErrMissingHeaders: a webhook-* header is absent or malformed.
	ErrMissingHeaders = signing.ErrMissingHeaders
	// ErrInvalidEnvelope: correctly signed, but the body is not a notifyd
	// envelope.
	ErrInvalidEnvelope = errors.New("webhook: invalid notifyd envelope")
	// ErrBodyTooLarge: the body exceeds the verifier's size limit.
	ErrBodyTooLarge = errors.New("webhook: body too large")
)

// HeaderAttempt is the header carrying the attempt number.
const HeaderAttempt = "Notifyd-Attempt"

// Defaults for the options.
const (
	DefaultTolerance   = 5 * time.Minute
	DefaultMaxBodySize = 1 << 20
)

// Event is one verified notification.
type Event struct {
	// ID is the notification id, the same on every delivery of it: use it
	// to recognise duplicates.
	ID         string
	Type       string
	ReceiverID string
	// IdempotencyKey is the producer's key (an order number, say), unique
	// only within one receiver. De-duplicate on ID instead: it is unique
	// everywhere, and it is the webhook-id header the signature covers.
	IdempotencyKey string
	CreatedAt      time.Time
	// Data is the producer's payload, as JSON.
	Data json.RawMessage
	// Attempt is the automatic attempt number (1, 2, …), or 0 for a manual
	// redelivery or a reconciliation. It comes from the Notifyd-Attempt
	// header, which is not covered by the signature: use it for logging,
	// not for decisions.
	Attempt int
	// Reconciled is true when `notifyctl reconcile` handed the notification
	// over (the Notifyd-Reconcile header, not signed either: for logging).
	// Its envelope and signature are a callback's, so one handler serves
	// both, and Event.ID de-duplicates between them.
	Reconciled bool
}

// Verifier checks incoming callbacks. It is safe for concurrent use.
type Verifier struct {
	keys      [][]byte
	tolerance time.Duration
	maxBody   int64
	now       func() time.Time
}

// Option configures a Verifier.
type Option func(*Verifier) error

// WithSecrets accepts callbacks signed with any of these secrets as well.
// During a rotation notifyd signs with the old and the new secret; a
// receiver that lists both keeps accepting callbacks whichever it deployed.
func WithSecrets(secrets ...string) Option {
	return func(v *Verifier) error {
		for _, s := range secrets {
			if err := v.addSecret(s); err != nil {
				return err
			}
		}
		return nil
	}
}

// WithTolerance sets how far the signed timestamp may be from now (default
// 5 minutes). Larger values widen the replay window.
func WithTolerance(d time.Duration) Option {
	return func(v *Verifier) error {
		if d <= 0 {
			return fmt.Errorf("webhook: tolerance must be positive, got %s", d)
		}
		v.tolerance = d
		return nil
	}
}

// WithMaxBodySize sets the largest body Verify reads (default 1 MiB).
func WithMaxBodySize(n int64) Option {
	return func(v *Verifier) error {
		if n <= 0 {
			return fmt.Errorf("webhook: max body size must be positive, got %d", n)
		}
		v.maxBody = n
		return nil
	}
}

// NewVerifier returns a verifier for a receiver's signing secret, as the
// admin API handed it out ("whsec_…"). It fails on a malformed secret.
func NewVerifier(secret string, opts ...Option) (*Verifier, error) {
	v := &Verifier{tolerance: DefaultTolerance, maxBody: DefaultMaxBodySize, now: time.Now}
	if err := v.addSecret(secret); err != nil {
		return nil, err
	}
	for _, o := range opts {
		if err := o(v); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (v *Verifier) addSecret(s string) error {
	key, err := signing.ParseSecret(s)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	v.keys = append(v.keys, key)
	return nil
}

// envelope is the JSON body notifyd sends (worker.Envelope).
type envelope struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	ReceiverID     string          `json:"receiver_id"`
	IdempotencyKey string          `json:"idempotency_key"`
	CreatedAt      time.Time       `json:"created_at"`
	Data           json.RawMessage `json:"data"`
}

// Verify reads r's body (up to the size limit), checks its signature and
// timestamp and parses the envelope. Afterwards r.Body holds the same bytes
// again, for callers that want the raw body. Errors match the package's
// sentinels with errors.Is.
func (v *Verifier) Verify(r *http.Request) (*Event, error) {
	if r.Body == nil {
		return nil, fmt.Errorf("%w: empty body", ErrInvalidEnvelope)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, v.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("webhook: read body: %w", err)
	}
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if int64(len(body)) > v.maxBody {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, v.maxBody)
	}
	return v.VerifyBody(r.Header, body)
}

// VerifyBody is Verify for a body already read (e.g. by a framework).
func (v *Verifier) VerifyBody(h http.Header, body []byte) (*Event, error) {
	if err := signing.Verify(h, body, v.now(), v.tolerance, v.keys...); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEnvelope, err)
	}
	if env.ID == "" || env.Type == "" || len(env.Data) == 0 {
		return nil, fmt.Errorf("%w: id, type and data are required", ErrInvalidEnvelope)
	}
	attempt, _ := strconv.Atoi(h.Get(HeaderAttempt)) // informational; absent means 0
	return &Event{
		ID: env.ID, Type: env.Type, ReceiverID: env.ReceiverID, IdempotencyKey: env.IdempotencyKey,
		CreatedAt: env.CreatedAt, Data: env.Data, Attempt: attempt, Reconciled: h.Get(HeaderReconcile) == "1",
	}, nil
}

// HandlerOption configures Handler.
type HandlerOption func(*handler)

// WithSuccessBody makes the handler answer 200 with this body instead of
// 204, for receivers configured with a success_body (notifyd then counts
// only that exact answer as delivered).
func WithSuccessBody(body string) HandlerOption {
	return func(h *handler) { h.successBody = &body }
}

// WithErrorLog receives every rejected callback and every handler error
// (default: nothing is logged). Use it to notice a wrong secret early.
func WithErrorLog(f func(r *http.Request, err error)) HandlerOption {
	return func(h *handler) { h.logErr = f }
}

type handler struct {
	v           *Verifier
	fn          func(context.Context, *Event) error
	successBody *string
	logErr      func(*http.Request, error)
}

// Handler adapts a function to an http.Handler that verifies each callback
// and calls fn with the event. It answers 204 (or 200 with the success
// body) when fn returns nil; 400 for a bad signature, stale timestamp,
// missing headers or invalid envelope; 413 for an oversized body; 405 for a
// method other than POST; and 500 when fn fails, so that notifyd retries
// later. Rejections also fail the delivery attempt, so a misconfigured
// secret shows up in notifyd's attempt log and is retried once fixed.
func Handler(v *Verifier, fn func(ctx context.Context, e *Event) error, opts ...HandlerOption) http.Handler {
	h := &handler{v: v, fn: fn}
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	evt, err := h.v.Verify(r)
	if err != nil {
		h.log(r, err)
		code := http.StatusBadRequest
		if errors.Is(err, ErrBodyTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		// The reason is safe to tell: it names which check failed, not the key.
		http.Error(w, err.Error(), code)
		return
	}
	if err := h.fn(r.Context(), evt); err != nil {
		h.log(r, fmt.Errorf("webhook: handler for notification %s: %w", evt.ID, err))
		// The handler's error text stays here: notifyd stores answer bodies,
		// and they should not carry the receiver's internals.
		http.Error(w, "webhook handler failed", http.StatusInternalServerError)
		return
	}
	if h.successBody != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, *h.successBody)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) log(r *http.Request, err error) {
	if h.logErr != nil {
		h.logErr(r, err)
	}
}
