package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/store"
)

// maxProducerReceivers bounds one producer's list; a producer for more
// receivers than this is an all-receivers producer.
const maxProducerReceivers = 1000

// errReceiverNotAllowed answers a producer that names a receiver outside its
// scope. It is checked before the receiver is looked up, so it tells nothing
// about whether that receiver exists.
var errReceiverNotAllowed = &APIError{Status: http.StatusForbidden, Code: "receiver_not_allowed", Field: "receiver_id",
	Message: "receiver_id names a receiver this producer may not send to or cancel for"}

// producerView is a producer record as the API shows it; Token appears only
// in the answer that creates it.
type producerView struct {
	*store.Producer
	Token string `json:"token,omitempty"`
}

// parseProducerReceivers reads the receivers field: "all" or a list of
// receiver ids.
func parseProducerReceivers(raw json.RawMessage) (all bool, ids []uuid.UUID, err error) {
	const msg = `must be "all" or a list of 1 to %d receiver ids`
	if len(raw) == 0 || bytes.Equal(raw, jsonNull) {
		return false, nil, fieldError("receivers", "is required: "+fmt.Sprintf(msg, maxProducerReceivers))
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s != "all" {
			return false, nil, fieldError("receivers", fmt.Sprintf(msg, maxProducerReceivers))
		}
		return true, nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 || len(list) > maxProducerReceivers {
		return false, nil, fieldError("receivers", fmt.Sprintf(msg, maxProducerReceivers))
	}
	seen := make(map[uuid.UUID]bool, len(list))
	for _, r := range list {
		id, ok := parseID(r)
		if !ok {
			return false, nil, fieldError("receivers", fmt.Sprintf("%q is not a receiver id (UUID)", r))
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return false, ids, nil
}

// createProducer serves POST /v1/producers (admin): a producer token for
// the given receivers, shown once.
func (s *Server) createProducer(c echo.Context) error {
	var in struct {
		Name      *string         `json:"name"`
		Receivers json.RawMessage `json:"receivers"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	name, err := credentialName(in.Name)
	if err != nil {
		return err
	}
	all, ids, err := parseProducerReceivers(in.Receivers)
	if err != nil {
		return err
	}
	token := newProducerToken()
	p := &store.Producer{ID: uuid.New(), Name: name, Prefix: shownPrefix(token), AllReceivers: all, Receivers: ids}
	if p.Receivers == nil {
		p.Receivers = []uuid.UUID{}
	}
	err = s.store.CreateProducer(c.Request().Context(), p, store.HashAPIKey(token))
	if errors.Is(err, store.ErrUnknownReceiver) {
		return fieldError("receivers", "names a receiver that does not exist")
	}
	if err != nil {
		return err
	}
	setAuditTarget(c, p.ID.String())
	return c.JSON(http.StatusCreated, producerView{Producer: p, Token: token})
}

// listProducers serves GET /v1/producers (admin). Static
// NOTIFYD_PRODUCER_TOKENS are configuration, not records, and are not listed.
func (s *Server) listProducers(c echo.Context) error {
	ps, err := s.store.ListProducers(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"data": ps})
}

// deleteProducer serves DELETE /v1/producers/:id (admin): the token stops
// working on every API process once the invalidation reaches it.
func (s *Server) deleteProducer(c echo.Context) error {
	id, ok := parseID(c.Param("id"))
	if !ok {
		return errNotFound
	}
	ctx := c.Request().Context()
	if err := s.store.DeleteProducer(ctx, id); err != nil {
		return err
	}
	s.auth.creds.invalidate(ctx, s.rdb, invalidateProducer, id)
	return c.NoContent(http.StatusNoContent)
}

// checkCancelScope refuses a producer's cancel of a notification outside
// its scope. The notification is looked up first, so an unknown id answers
// 404 as it does for everyone.
func (s *Server) checkCancelScope(c echo.Context, id uuid.UUID) error {
	p := principalOf(c)
	if p.role == roleAdmin || p.producer == nil || p.producer.AllReceivers {
		return nil
	}
	n, err := s.store.GetNotification(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if !p.mayProduceFor(n.ReceiverID) {
		return errReceiverNotAllowed
	}
	return nil
}

// recordedInScope keeps, of the recorded ids, those a scoped producer may
// know about: another receiver's notification looks unrecorded to it.
func (s *Server) recordedInScope(c echo.Context, known map[uuid.UUID]bool) error {
	p := principalOf(c)
	if p.role == roleAdmin || p.producer == nil || p.producer.AllReceivers || len(known) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, 0, len(known))
	for id := range known {
		ids = append(ids, id)
	}
	owners, err := s.store.NotificationReceivers(c.Request().Context(), ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !p.mayProduceFor(owners[id]) {
			delete(known, id)
		}
	}
	return nil
}
