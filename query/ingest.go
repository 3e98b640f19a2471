package query

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/trace"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/internal/tracing"
)

// ingestInput is the body of POST /v1/notifications.
type ingestInput struct {
	ReceiverID     string          `json:"receiver_id"`
	EventType      string          `json:"event_type"`
	IdempotencyKey string          `json:"idempotency_key"`
	CallbackURL    string          `json:"callback_url"`
	Payload        json.RawMessage `json:"payload"`
}

// ingest records a notification in Postgres and queues its first attempt.
// The notification is on disk before the 202: if the enqueue fails (Redis
// down) the re-drive job queues it later, so the 202 is honest.
func (s *Server) ingest(c echo.Context) error {
	var in ingestInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	nn, err := s.prepareIngest(principalOf(c), &in)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// The receiver's checks and the INSERT, shared with concurrent
	// requests (ingest_batch.go).
	n, created, err := s.ingests.record(ctx, nn)
	if err != nil {
		return err
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(tracing.NotificationID.String(n.ID.String()), tracing.ReceiverID.String(n.ReceiverID.String()))
	}
	if err := settleIngest(n, created, &in); err != nil {
		return err
	}
	if !created {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	// Also on a replay: a first request whose enqueue failed is queued now.
	s.enqueueIngested(ctx, n)
	return c.JSON(http.StatusAccepted, map[string]any{"id": n.ID, "status": n.Status})
}

// prepareIngest checks what can be checked of in without the database
// (the token's scope, the fields) and returns the notification to record.
// Both ingest endpoints hand every notification through it.
func (s *Server) prepareIngest(p *principal, in *ingestInput) (store.NewNotification, error) {
	receiverID, err := uuid.Parse(in.ReceiverID)
	if err != nil {
		return store.NewNotification{}, fieldError("receiver_id", "must be a receiver id (UUID)")
	}
	if !p.mayProduceFor(receiverID) {
		return store.NewNotification{}, errReceiverNotAllowed
	}
	if err := s.rules.Validate(&ingest.Input{
		EventType: in.EventType, IdempotencyKey: in.IdempotencyKey, CallbackURL: in.CallbackURL, Payload: in.Payload,
	}); err != nil {
		return store.NewNotification{}, err
	}
	// Store what receivers will get: the task encoding compacts JSON, so
	// the Go client's notifications are compact too.
	var compact bytes.Buffer
	if err := json.Compact(&compact, in.Payload); err == nil {
		in.Payload = compact.Bytes()
	}
	return store.NewNotification{
		ID: tasks.NotificationID(receiverID, in.IdempotencyKey), ReceiverID: receiverID,
		EventType: in.EventType, IdempotencyKey: in.IdempotencyKey, CallbackURL: in.CallbackURL, Payload: in.Payload,
	}, nil
}

// settleIngest judges a recorded notification n against what was sent
// (in, after prepareIngest): a replay with other content is a conflict.
// It counts the outcome in the metrics.
func settleIngest(n *store.Notification, created bool, in *ingestInput) error {
	if created && n.Status == store.StatusFailed {
		// Its receiver is disabled: accepted and on record as failed.
		metrics.DisabledFailed.WithLabelValues("ingest").Inc()
		metrics.Terminal.WithLabelValues(store.StatusFailed).Inc()
	}
	if created {
		metrics.Accepted.WithLabelValues("http").Inc()
		return nil
	}
	if !ingest.SameContent(n.EventType, n.Payload, in.EventType, in.Payload) {
		metrics.IdempotencyConflicts.WithLabelValues("http").Inc()
		return &APIError{Status: http.StatusConflict, Code: "idempotency_conflict", Field: "idempotency_key",
			Message: "idempotency_key was already used for notification " + n.ID.String() + " with a different event_type or payload (stored " +
				ingest.PayloadHash(n.Payload) + ", sent " + ingest.PayloadHash(in.Payload) + ")"}
	}
	return nil
}

// enqueueIngested queues the next attempt of the pending notifications
// among ns. A failure is not the producer's: the notifications are on
// record, and the re-drive job queues them later.
//
// A lone notification due now goes through the Linger, so concurrent
// requests share batch tasks; several (a batch request's) go out together
// as batch tasks at once. A replay of one waiting for a retry is scheduled
// as its own task at its time (a batch's members are due together).
func (s *Server) enqueueIngested(ctx context.Context, ns ...*store.Notification) {
	var due []*tasks.Deliver
	for _, n := range ns {
		if n.Status != store.StatusPending {
			continue
		}
		d := deliverTask(n)
		if n.NextAttemptAt != nil && n.NextAttemptAt.After(time.Now()) {
			s.enqueueFailed(n.ID, tasks.Schedule(ctx, s.queue, s.cfg.TaskKeys, d, n.Attempts+1, *n.NextAttemptAt))
			continue
		}
		d.Attempt = n.Attempts + 1
		due = append(due, &d)
	}
	switch len(due) {
	case 0:
	case 1:
		_, err := s.linger.Enqueue(ctx, due[0])
		s.enqueueFailed(due[0].ID, err)
	default:
		res, _ := s.producer.Enqueue(ctx, due) // each member's error is in its Result
		for i, r := range res {
			s.enqueueFailed(due[i].ID, r.Err)
		}
	}
}

// enqueueFailed logs and counts the failed enqueue of notification id
// (err nil: none).
func (s *Server) enqueueFailed(id uuid.UUID, err error) {
	if err != nil {
		metrics.InfraErrors.WithLabelValues("redis").Inc()
		s.cfg.Logger.Warn("ingest: enqueue failed; the re-drive job will queue it", "notification_id", id, "err", err)
	}
}

// deliverTask is the task for a stored notification.
func deliverTask(n *store.Notification) tasks.Deliver {
	d := tasks.Deliver{ID: n.ID, ReceiverID: n.ReceiverID, EventType: n.EventType, IdempotencyKey: n.IdempotencyKey,
		Payload: n.Payload, EnqueuedAt: n.CreatedAt}
	if n.CallbackURL != nil {
		d.CallbackURL = *n.CallbackURL
	}
	return d
}
