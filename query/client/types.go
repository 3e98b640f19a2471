package client

import (
	"encoding/json"
	"time"
)

// The statuses and outcomes below repeat internal/store's on purpose: they
// are the API's wire values, and a public client package cannot import an
// internal one (nor should the store depend on the client).
// TestConstantsMatchStore keeps the two lists equal.

// Notification statuses. All but StatusPending are final.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Receiver delivery modes: push gets callbacks; pull reads Stream and
// acknowledges with Ack.
const (
	DeliveryPush = "push"
	DeliveryPull = "pull"
)

// Attempt outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeGone    = "gone"    // the receiver answered 410 Gone
	OutcomeTimeout = "timeout" // no full answer within the receiver's timeout
	OutcomeBlocked = "blocked" // the callback address is not allowed
	OutcomeOffered = "offered" // a pull receiver's attempt: offered on its stream, no HTTP request
)

// Notification is one notification as the API shows it. Optional fields are
// zero (nil, "") when the API leaves them out.
type Notification struct {
	ID             string          `json:"id"`
	ReceiverID     string          `json:"receiver_id"`
	EventType      string          `json:"event_type"`
	IdempotencyKey string          `json:"idempotency_key"`
	CallbackURL    string          `json:"callback_url,omitempty"`
	Payload        json.RawMessage `json:"payload"`
	Status         string          `json:"status"`
	// Attempts counts the automatic attempts made; manual redeliveries are
	// not counted here (they are in DeliveryAttempts with negative numbers).
	Attempts       int        `json:"attempts"`
	MaxAttempts    int        `json:"max_attempts"`
	CreatedAt      time.Time  `json:"created_at"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty"`
	LastAttemptAt  *time.Time `json:"last_attempt_at,omitempty"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty"`
	LastStatusCode *int       `json:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	// DeliveryAttempts is filled by the single-notification calls (Get,
	// GetByKey, Cancel), not by List.
	DeliveryAttempts []Attempt `json:"delivery_attempts,omitempty"`
	// Deferral is set by Get and GetByKey while the notification is pending
	// and its receiver's circuit is open: why no attempt is being made,
	// although NextAttemptAt may have passed.
	Deferral *Deferral `json:"deferral,omitempty"`
}

// Deferral explains a pending notification held back without attempts.
type Deferral struct {
	Reason  string    `json:"reason"` // "circuit_open"
	Until   time.Time `json:"until"`  // when the open period ends and one probe may go
	Message string    `json:"message"`
}

// Final reports whether the notification reached a status it never leaves.
func (n *Notification) Final() bool { return n.Status != StatusPending }

// Attempt is one HTTP request notifyd made to the receiver.
type Attempt struct {
	// Attempt is 1..max_attempts for the automatic schedule and −1, −2, …
	// for manual redeliveries.
	Attempt    int       `json:"attempt"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	// StatusCode is 0 when there was no HTTP answer (timeout, refused, blocked).
	StatusCode   int    `json:"status_code,omitempty"`
	Outcome      string `json:"outcome"`
	Error        string `json:"error,omitempty"`
	ResponseBody string `json:"response_body,omitempty"`
	Manual       bool   `json:"manual"`
}

// Duration is how long the attempt took.
func (a *Attempt) Duration() time.Duration { return time.Duration(a.DurationMS) * time.Millisecond }

// Page is one page of a listing. NextCursor is "" on the last page.
type Page struct {
	Data       []*Notification `json:"data"`
	NextCursor string          `json:"next_cursor"`
	HasMore    bool            `json:"has_more"`
}

// Order of a listing by (created_at, id).
const (
	Ascending  = "asc"
	Descending = "desc"
)

// ListParams filters and pages a listing. Zero fields are not sent and take
// the server's defaults.
type ListParams struct {
	Status         string
	EventType      string
	IdempotencyKey string
	// CreatedAfter and CreatedBefore bound created_at (RFC 3339 on the wire).
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// Order is Ascending or Descending by (created_at, id).
	Order string
	// Limit is the page size, 1..500.
	Limit int
	// Cursor continues a listing from a previous Page.NextCursor; the other
	// parameters must stay the same.
	Cursor string
	// ReceiverID narrows an admin's listing to one receiver; receivers
	// always see only their own notifications.
	ReceiverID string
}

// NewNotification is what Send hands in.
type NewNotification struct {
	ReceiverID     string          `json:"receiver_id"`
	EventType      string          `json:"event_type"`
	IdempotencyKey string          `json:"idempotency_key"`
	CallbackURL    string          `json:"callback_url,omitempty"`
	Payload        json.RawMessage `json:"payload"`
}

// Accepted is the answer to Send.
type Accepted struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Replayed is true when a notification with the same receiver and
	// idempotency key existed already and was returned instead.
	Replayed bool `json:"-"`
}

// BatchResult is one notification's result from SendBatch: what Send
// would have returned for it.
type BatchResult struct {
	ID     string `json:"id,omitempty"`
	Status string `json:"status,omitempty"`
	// Replayed is Accepted.Replayed.
	Replayed bool `json:"replayed,omitempty"`
	// Error is why the notification was refused (nil: accepted). Its
	// Field names the notification by its place in the request,
	// notifications[3].event_type; its StatusCode is 0.
	Error *APIError `json:"error,omitempty"`
}

// Redelivery is the answer to Redeliver.
type Redelivery struct {
	ID string `json:"id"`
	// Redelivery is the manual redelivery's number n; its attempt is
	// recorded as −n.
	Redelivery int `json:"redelivery"`
}

// Receiver is a receiver as the API shows it (secrets are never included).
type Receiver struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	CallbackURL string  `json:"callback_url"`
	Delivery    string  `json:"delivery"` // DeliveryPush or DeliveryPull
	Active      bool    `json:"active"`
	Timeout     string  `json:"timeout,omitempty"`
	SuccessBody *string `json:"success_body"`
	// CallbackHosts limits per-notification callback URL overrides; nil:
	// no limit, empty: no override allowed.
	CallbackHosts []string  `json:"callback_hosts"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	// Retry and EffectiveRetry are the receiver's retry policy override and
	// the policy in force, as the server reports them.
	Retry          json.RawMessage `json:"retry,omitempty"`
	EffectiveRetry json.RawMessage `json:"effective_retry,omitempty"`
	// Status is the receiver's health: ReceiverActive, ReceiverFailing
	// (every attempt has failed for a while; still attempted) or
	// ReceiverDisabled (nothing attempted until Enable). Active above is
	// the admin's switch for accepting new notifications, apart from it.
	Status            string     `json:"status"`
	StatusChangedAt   *time.Time `json:"status_changed_at"`
	FailingSince      *time.Time `json:"failing_since"`
	LastSuccessAt     *time.Time `json:"last_success_at"`
	DisabledAt        *time.Time `json:"disabled_at"`
	DisabledReason    string     `json:"disabled_reason"`
	StatusCallbackURL string     `json:"status_callback_url"`
}

// Receiver health states (Receiver.Status).
const (
	ReceiverActive   = "active"
	ReceiverFailing  = "failing"
	ReceiverDisabled = "disabled"
)
