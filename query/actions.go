package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/circuit"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
)

const (
	// maxManualRedeliveries bounds the manual redeliveries of one
	// notification: enough for any real reconciliation, and it keeps a
	// script stuck in a loop from hammering a receiver through us.
	maxManualRedeliveries = 100
	// maxRecoverWindow bounds a recover call, so one request re-opens a
	// bounded amount of history.
	maxRecoverWindow = 14 * 24 * time.Hour
	// recoverBatchSize is how many notifications one recover transaction
	// re-opens; each batch's row locks are held only for its statement.
	recoverBatchSize = 1000
	// recoverTimeout bounds a recover call's work. The work is detached
	// from the request: a client that hangs up does not stop it half way
	// (though calling again would finish it).
	recoverTimeout = 2 * time.Minute
)

func errConflict(msg string) *APIError { return apiError(http.StatusConflict, "conflict", msg) }

// redeliver serves POST /v1/notifications/:id/redeliver: one more delivery
// now, recorded as manual attempt −n. It does not touch the automatic
// schedule (attempts, max_attempts, next_attempt_at).
func (s *Server) redeliver(c echo.Context) error {
	n, err := s.loadVisible(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	no, err := s.store.RequestRedelivery(ctx, n.ID, maxManualRedeliveries)
	switch {
	case errors.Is(err, store.ErrCancelled):
		return errConflict("the notification is cancelled; it is not delivered any more")
	case errors.Is(err, store.ErrRedeliveryLimit):
		return apiError(http.StatusConflict, "redelivery_limit",
			fmt.Sprintf("the notification has had the maximum of %d manual redeliveries", maxManualRedeliveries))
	case err != nil:
		return err
	}
	d := deliverTask(n)
	d.Attempt, d.Manual = 0, no
	if _, err := tasks.Enqueue(ctx, s.queue, s.cfg.TaskKeys, &d); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		// Number no is used up without an attempt; numbers need only be
		// unique, and the caller can simply ask again.
		metrics.InfraErrors.WithLabelValues("redis").Inc()
		s.cfg.Logger.Warn("redeliver: enqueue failed", "notification_id", n.ID, "redelivery", no, "err", err)
		return apiError(http.StatusServiceUnavailable, "unavailable", "the redelivery could not be queued; try again")
	}
	metrics.ManualRedeliveries.Inc()
	return c.JSON(http.StatusAccepted, map[string]any{"id": n.ID, "redelivery": no})
}

type recoverInput struct {
	Since *string `json:"since"`
	Until *string `json:"until"`
}

// recoverFailed serves POST /v1/receivers/:id/recover: every failed
// notification of the receiver created in [since, until) gets one more
// automatic attempt, due now. Calling it again recovers nothing new: the
// first call left them pending (or delivered by now), not failed.
func (s *Server) recoverFailed(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in recoverInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Since == nil {
		return fieldError("since", "is required")
	}
	since, err := parseTime("since", *in.Since)
	if err != nil {
		return err
	}
	until := time.Now()
	if in.Until != nil {
		if until, err = parseTime("until", *in.Until); err != nil {
			return err
		}
	}
	if !since.Before(until) {
		return fieldError("until", "must be later than since")
	}
	if until.Sub(since) > maxRecoverWindow {
		return fieldError("since", fmt.Sprintf("the window from since to until must be at most %s (14 days); split larger windows into several calls", maxRecoverWindow))
	}
	ctx := c.Request().Context()
	r, err := s.store.GetReceiver(ctx, id)
	if err != nil {
		return err // an admin naming an unknown receiver: 404
	}
	if r.Status == store.ReceiverDisabled {
		// Its notifications would only fail again, at once.
		return apiError(http.StatusConflict, "receiver_disabled",
			"the receiver is disabled: enable it first (POST /v1/receivers/{id}/enable), then recover")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recoverTimeout)
	defer cancel()
	// Reset the receiver's circuit fleet-wide before queueing: the operator
	// says it is fixed, so its notifications must not wait out a cool-down.
	if err := circuit.Close(ctx, s.rdb, id); err != nil {
		metrics.InfraErrors.WithLabelValues("redis").Inc()
		s.cfg.Logger.Warn("recover: circuit reset failed; deliveries wait for its cool-down", "receiver_id", id, "err", err)
	}
	var queueErr error
	unqueued := 0
	n, err := s.store.RecoverFailed(ctx, id, since, until, recoverBatchSize, func(batch []*store.Notification) {
		for _, row := range batch {
			if queueErr != nil {
				// Redis is failing: do not wait for every row to time out.
				unqueued++
				continue
			}
			due := time.Now()
			if row.NextAttemptAt != nil {
				due = *row.NextAttemptAt
			}
			if err := tasks.Schedule(ctx, s.queue, s.cfg.TaskKeys, deliverTask(row), row.Attempts+1, due); err != nil {
				queueErr = err
				unqueued++
			}
		}
	})
	metrics.Recovered.Add(float64(n))
	if queueErr != nil {
		// They are pending and due in Postgres: the re-drive job queues them.
		metrics.InfraErrors.WithLabelValues("redis").Inc()
		s.cfg.Logger.Warn("recover: enqueue failed; the re-drive job will queue the rest",
			"receiver_id", id, "recovered", n, "unqueued", unqueued, "err", queueErr)
	}
	if err != nil {
		// Batches before the error are recovered and queued; calling again
		// picks up the rest.
		return fmt.Errorf("recover (%d recovered before the error): %w", n, err)
	}
	return c.JSON(http.StatusAccepted, map[string]int{"recovered": n})
}

// cancel serves POST /v1/notifications/:id/cancel (admin or producer): a
// pending notification gets no further attempts.
func (s *Server) cancel(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	if err := s.checkCancelScope(c, id); err != nil {
		return err
	}
	ctx := c.Request().Context()
	n, err := s.store.CancelNotification(ctx, id)
	if errors.Is(err, store.ErrNotPending) {
		return errConflict(fmt.Sprintf("the notification is %s; only a pending notification can be cancelled", n.Status))
	}
	if err != nil {
		return err
	}
	metrics.Terminal.WithLabelValues(store.StatusCancelled).Inc()
	attempts, err := s.store.ListAttempts(ctx, n.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, notificationView{Notification: n, DeliveryAttempts: attemptViews(attempts)})
}
