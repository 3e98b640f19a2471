package query

import (
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// maxRecordedIDs bounds one POST /v1/notifications/recorded: an outbox
// relay asks one batch (100 rows by default) at a time.
const maxRecordedIDs = 1000

// recorded serves POST /v1/notifications/recorded (producer or admin):
// which of the given notification ids notifyd has on record. An outbox relay
// running in a producer's process asks it before letting go of its rows. It
// answers only ids, no content: producers may not read notifications.
func (s *Server) recorded(c echo.Context) error {
	var in struct {
		IDs []string `json:"ids"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if len(in.IDs) > maxRecordedIDs {
		return fieldError("ids", fmt.Sprintf("at most %d ids per request", maxRecordedIDs))
	}
	ids := make([]uuid.UUID, len(in.IDs))
	for i, raw := range in.IDs {
		id, err := uuid.Parse(raw)
		if err != nil {
			return fieldError("ids", fmt.Sprintf("%q is not a notification id (UUID)", raw))
		}
		ids[i] = id
	}
	known, err := s.store.RecordedNotifications(c.Request().Context(), ids)
	if err != nil {
		return err
	}
	if err := s.recordedInScope(c, known); err != nil {
		return err
	}
	out := make([]string, 0, len(known))
	for _, id := range ids {
		if known[id] {
			out = append(out, id.String())
			delete(known, id) // an id asked twice is answered once
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"recorded": out})
}
