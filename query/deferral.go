package query

import (
	"time"

	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/circuit"
	"github.com/notifyd/notifyd/internal/store"
)

// deferralView tells why a pending notification is not being attempted:
// while its receiver's circuit is open, workers hand its tasks back without
// an attempt, so its next_attempt_at can lie in the past with nothing
// recorded. The view says so instead of leaving the receiver to guess.
type deferralView struct {
	Reason  string    `json:"reason"` // "circuit_open"
	Until   time.Time `json:"until"`  // when the open period ends and a probe may go
	Message string    `json:"message"`
}

// deferral reads n's receiver's circuit (one Redis read, for pending
// notifications only). A Redis error leaves the view without it: the
// notification itself is what was asked for.
func (s *Server) deferral(c echo.Context, n *store.Notification) *deferralView {
	if n.Status != store.StatusPending {
		return nil
	}
	open, ok, err := circuit.Get(c.Request().Context(), s.rdb, n.ReceiverID)
	if err != nil {
		s.cfg.Logger.Warn("notification view: read circuit", "receiver_id", n.ReceiverID, "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	return &deferralView{Reason: "circuit_open", Until: open.Until.UTC(),
		Message: "the receiver's last deliveries failed in a row, so its circuit is open: deliveries to it wait, without using attempts, " +
			"until " + open.Until.UTC().Format(time.RFC3339) + ", when one probe decides; POST /v1/receivers/{id}/recover resumes them at once"}
}
