package query

import (
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/ingest"
	"github.com/notifyd/notifyd/internal/store"
)

// notificationView is a notification as the API shows it.
type notificationView struct {
	*store.Notification
	DeliveryAttempts []attemptView `json:"delivery_attempts,omitempty"`
	// Deferral explains a pending notification held back by its
	// receiver's open circuit (deferral.go).
	Deferral *deferralView `json:"deferral,omitempty"`
}

// attemptView is a delivery attempt as the API shows it.
type attemptView struct {
	store.Attempt
	Manual     bool  `json:"manual"`
	DurationMS int64 `json:"duration_ms"`
}

func attemptViews(as []store.Attempt) []attemptView {
	out := make([]attemptView, len(as))
	for i, a := range as {
		out[i] = attemptView{Attempt: a, Manual: a.Manual(), DurationMS: a.Duration.Milliseconds()}
	}
	return out
}

// loadVisible returns the notification if the caller may see it, else
// ErrNotFound: another receiver's notification looks exactly like a missing one.
func (s *Server) loadVisible(c echo.Context) (*store.Notification, error) {
	id, err := pathID(c)
	if err != nil {
		return nil, err
	}
	p := principalOf(c)
	if !p.readsNotifications() {
		return nil, errForbidden
	}
	n, err := s.store.GetNotification(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !p.canSee(n.ReceiverID) {
		return nil, errNotFound
	}
	return n, nil
}

// loadVisibleAttempts is loadVisible with the notification's attempts.
func (s *Server) loadVisibleAttempts(c echo.Context) (*store.Notification, []store.Attempt, error) {
	n, err := s.loadVisible(c)
	if err != nil {
		return nil, nil, err
	}
	attempts, err := s.store.ListAttempts(c.Request().Context(), n.ID)
	if err != nil {
		return nil, nil, err
	}
	return n, attempts, nil
}

// getNotification serves GET /v1/notifications/:id, with the attempts.
func (s *Server) getNotification(c echo.Context) error {
	n, attempts, err := s.loadVisibleAttempts(c)
	if err != nil {
		return err
	}
	v := notificationView{Notification: n, DeliveryAttempts: attemptViews(attempts), Deferral: s.deferral(c, n)}
	return writeJSON(c, http.StatusOK, v, v.appendJSON)
}

// getByKey serves GET /v1/notifications/by-key/:key: the notification a
// receiver got for the producer's business key (an order number). An admin
// names the receiver with receiver_id.
func (s *Server) getByKey(c echo.Context) error {
	p := principalOf(c)
	if !p.readsNotifications() {
		return errForbidden
	}
	key, err := pathParam(c, "key")
	if err != nil || key == "" || len(key) > ingest.MaxIdempotencyKeyLen {
		return errNotFound // no notification can have such a key
	}
	receiver, err := receiverScope(p, c.QueryParam("receiver_id"), c.QueryParams().Has("receiver_id"))
	if err != nil {
		return err
	}
	if receiver == nil {
		return fieldError("receiver_id", "is required: idempotency keys are unique per receiver")
	}
	n, attempts, err := s.store.GetNotificationByKeyWithAttempts(c.Request().Context(), *receiver, key)
	if err != nil {
		return err
	}
	v := notificationView{Notification: n, DeliveryAttempts: attemptViews(attempts), Deferral: s.deferral(c, n)}
	return writeJSON(c, http.StatusOK, v, v.appendJSON)
}

// pathParam returns a path parameter decoded. Echo routes on the raw path
// when the request escapes characters (a key holding "/" arrives as %2F),
// and then hands the parameter over still escaped.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil
	}
	return url.PathUnescape(v)
}

// listAttempts serves GET /v1/notifications/:id/attempts.
func (s *Server) listAttempts(c echo.Context) error {
	_, attempts, err := s.loadVisibleAttempts(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": attemptViews(attempts)})
}
