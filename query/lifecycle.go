package query

import (
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/lifecycle"
	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// healthView is a receiver's place in the health lifecycle as the API
// shows it (in the receiver and its summary).
type healthView struct {
	Status          string     `json:"status"`
	StatusChangedAt *time.Time `json:"status_changed_at"`
	FailingSince    *time.Time `json:"failing_since"`
	LastSuccessAt   *time.Time `json:"last_success_at"`
	DisabledAt      *time.Time `json:"disabled_at"`
	DisabledReason  *string    `json:"disabled_reason"`
}

func healthOf(r *store.Receiver) healthView {
	v := healthView{Status: r.Status, StatusChangedAt: r.StatusChangedAt, FailingSince: r.FailingSince,
		LastSuccessAt: r.LastSuccessAt, DisabledAt: r.DisabledAt}
	if r.DisabledReason != "" {
		v.DisabledReason = &r.DisabledReason
	}
	return v
}

// enableReceiver answers POST /v1/receivers/:id/enable (the admin, or the
// receiver itself once it has healed): a disabled receiver is attempted
// again (receiver.enabled); then recover re-sends what failed meanwhile.
// Enabling a receiver that is not disabled changes nothing.
func (s *Server) enableReceiver(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	r, err := s.enable(c, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.view(r))
}

// enable takes a disabled receiver back and queues the receiver.enabled
// event (recorded with the change; the re-drive job queues it if Redis
// cannot take it now).
func (s *Server) enable(c echo.Context, id uuid.UUID) (*store.Receiver, error) {
	ctx := c.Request().Context()
	r, enabled, events, err := s.store.EnableReceiver(ctx, id, lifecycle.Events{Defaults: s.cfg.Retry}.Make)
	if err != nil || !enabled {
		return r, err
	}
	metrics.ReceiverTransitions.WithLabelValues(store.EventEnabled).Inc()
	s.cfg.Logger.Info("receiver enabled", "receiver_id", r.ID, "events", len(events))
	if err := lifecycle.Queue(ctx, s.queue, s.cfg.TaskKeys, events); err != nil {
		metrics.InfraErrors.WithLabelValues("redis").Inc()
		s.cfg.Logger.Warn("enable: queueing receiver.enabled failed; the re-drive job will queue it", "receiver_id", id, "err", err)
	}
	return r, nil
}
