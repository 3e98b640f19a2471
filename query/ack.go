package query

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/metrics"
	"github.com/notifyd/notifyd/internal/store"
)

// maxAckIDs bounds one batch acknowledgement, like /recorded.
const maxAckIDs = 1000

var errNotPull = &APIError{Status: http.StatusConflict, Code: "delivery_not_pull", Field: "delivery",
	Message: `this receiver's delivery is "push": its notifications are delivered by callback; set delivery to "pull" to stream and acknowledge them`}

// ack serves POST /v1/notifications/:id/ack: a pull receiver has processed
// one of its notifications, which becomes delivered and is offered no more.
// Acknowledging again answers the same; another receiver's notification is
// not found.
func (s *Server) ack(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	status, err := s.acknowledge(c, []uuid.UUID{id})
	if err != nil {
		return err
	}
	switch st, ok := status[id]; {
	case !ok:
		return errNotFound
	case st == store.StatusCancelled:
		return errConflict("the notification is cancelled; there is nothing to acknowledge")
	default:
		return c.JSON(http.StatusOK, map[string]any{"id": id, "status": st})
	}
}

// ackBatch serves POST /v1/notifications/ack {"ids": […]}: ack for up to
// 1000 notifications at once. The answer sorts the ids: acknowledged (now
// delivered, whether by this call or before), cancelled, and not_found
// (unknown, or another receiver's).
func (s *Server) ackBatch(c echo.Context) error {
	var in struct {
		IDs []string `json:"ids"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if len(in.IDs) == 0 || len(in.IDs) > maxAckIDs {
		return fieldError("ids", fmt.Sprintf("must hold 1 to %d notification ids", maxAckIDs))
	}
	ids := make([]uuid.UUID, len(in.IDs))
	for i, raw := range in.IDs {
		id, err := uuid.Parse(raw)
		if err != nil {
			return fieldError(fmt.Sprintf("ids[%d]", i), fmt.Sprintf("%q is not a notification id (UUID)", raw))
		}
		ids[i] = id
	}
	status, err := s.acknowledge(c, ids)
	if err != nil {
		return err
	}
	out := map[string][]string{"acknowledged": {}, "cancelled": {}, "not_found": {}}
	seen := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue // an id given twice is answered once
		}
		seen[id] = true
		switch st, ok := status[id]; {
		case !ok:
			out["not_found"] = append(out["not_found"], id.String())
		case st == store.StatusCancelled:
			out["cancelled"] = append(out["cancelled"], id.String())
		default:
			out["acknowledged"] = append(out["acknowledged"], id.String())
		}
	}
	return c.JSON(http.StatusOK, out)
}

// acknowledge checks that the caller is a pull receiver and acknowledges
// ids among its notifications.
func (s *Server) acknowledge(c echo.Context, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	p := principalOf(c)
	if p.role != roleReceiver {
		return nil, errForbidden // only the receiver itself says it has processed a notification
	}
	ctx := c.Request().Context()
	if err := s.requirePull(ctx, p.receiver); err != nil {
		return nil, err
	}
	status, changed, err := s.store.Acknowledge(ctx, p.receiver, ids)
	if err != nil {
		return nil, err
	}
	metrics.Terminal.WithLabelValues(store.StatusDelivered).Add(float64(changed))
	return status, nil
}

// requirePull answers 409 delivery_not_pull for a push receiver.
func (s *Server) requirePull(ctx context.Context, receiver uuid.UUID) error {
	r, err := s.store.GetReceiver(ctx, receiver)
	if err != nil {
		return err
	}
	if !r.Pull() {
		return errNotPull
	}
	return nil
}
