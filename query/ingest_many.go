package query

// POST /v1/notifications/batch: many notifications in one request, the HTTP
// twin of the Go client's NotifyMany. Each notification goes through the
// single endpoint's checks, recording and queueing (ingest.go) and gets its
// own result, in order; one that is refused does not sink the others. What
// the batch saves is the per-request HTTP cost (a read, a decode and an
// answer per notification), the API's largest in the ingest benchmark.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/store"
)

// ingestBatchRoute is the batch endpoint, under /v1.
const ingestBatchRoute = "/notifications/batch"

// maxBatchBody bounds a batch request's body: 500 notifications of about
// 8 KiB each. A body of one notification of the largest payload is let
// through all the same (batchBodyLimit).
const maxBatchBody = 4 << 20

func batchBodyLimit(maxPayload int) int64 {
	return max(maxBatchBody, int64(maxPayload+envelopeRoom))
}

// ingestManyInput is the body of the batch endpoint. Its notifications are
// decoded one by one (decodeIngestItem), so that one malformed item is
// that item's error, not the request's.
type ingestManyInput struct {
	Notifications []json.RawMessage `json:"notifications"`
}

// ingestResult is one notification's result: the single endpoint's answer
// (id and status, and whether it replayed an earlier request), or the
// error it would have answered, its field named by its place in the batch.
type ingestResult struct {
	ID       *uuid.UUID `json:"id,omitempty"`
	Status   string     `json:"status,omitempty"`
	Replayed *bool      `json:"replayed,omitempty"`
	Error    *APIError  `json:"error,omitempty"`
}

// ingestMany records and queues a batch of notifications: all of them are
// handed to the recorder in order before it waits for any, so they share
// its INSERTs, and the pending ones are queued together. Two with the same
// idempotency key are recorded by the first; the later one replays it (or
// conflicts with it), as a later request would.
func (s *Server) ingestMany(c echo.Context) error {
	var body ingestManyInput
	// Only the items nest, and they are raw here: decodeIngestItem bounds
	// each payload's depth as the single endpoint does.
	if err := decodeJSONNested(c, &body, 0); err != nil {
		return err
	}
	count := len(body.Notifications)
	switch {
	case count == 0:
		return fieldError("notifications", fmt.Sprintf("must hold 1 to %d notifications", maxIngestBatch))
	case count > maxIngestBatch:
		return fieldError("notifications", fmt.Sprintf("holds %d notifications, more than the limit of %d; send them in several requests", count, maxIngestBatch))
	}
	if err := s.limit.takeBatch(c, count); err != nil {
		return err
	}
	ctx, p := c.Request().Context(), principalOf(c)
	ins := make([]ingestInput, count)
	items := make([]*ingestItem, count)
	results := make([]ingestResult, count)
	for i, raw := range body.Notifications {
		nn, err := s.prepareItem(p, raw, &ins[i])
		if err == nil {
			items[i], err = s.ingests.add(ctx, nn)
		}
		if err != nil {
			results[i].Error = s.itemError(c, i, err)
		}
	}
	var recorded []*store.Notification
	failed := 0
	for i, it := range items {
		if it == nil {
			failed++
			continue
		}
		n, created, err := it.wait(ctx)
		if err == nil {
			err = settleIngest(n, created, &ins[i])
		}
		if err != nil {
			results[i].Error = s.itemError(c, i, err)
			failed++
			continue
		}
		replayed := !created
		results[i] = ingestResult{ID: &n.ID, Status: n.Status, Replayed: &replayed}
		recorded = append(recorded, n)
	}
	s.enqueueIngested(ctx, recorded...)
	return c.JSON(http.StatusOK, map[string]any{"results": results, "failed": failed})
}

// prepareItem decodes one item of a batch into in, strictly as the single
// endpoint decodes its body, and prepares it (prepareIngest).
func (s *Server) prepareItem(p *principal, raw json.RawMessage, in *ingestInput) (store.NewNotification, error) {
	if !bytes.HasPrefix(raw, []byte("{")) {
		return store.NewNotification{}, &APIError{Status: http.StatusUnprocessableEntity, Code: "invalid_field", Message: "must be a JSON object"}
	}
	if err := decodeStrict(bytes.NewReader(raw), in); err != nil {
		return store.NewNotification{}, jsonError(err)
	}
	return s.prepareIngest(p, in)
}

// itemError is err as item i's error: the single endpoint's answer to it,
// with the field named by its place in the request
// (notifications[3].event_type).
func (s *Server) itemError(c echo.Context, i int, err error) *APIError {
	var ae APIError
	if isTimeout(c.Request().Context(), err) {
		ae = *errTimeout
	} else {
		ae = *s.apiErrorOf(c, err)
	}
	path := fmt.Sprintf("notifications[%d]", i)
	if ae.Field != "" {
		// fieldError's messages begin with the field's name.
		if rest, ok := strings.CutPrefix(ae.Message, ae.Field+" "); ok {
			ae.Message = path + "." + ae.Field + " " + rest
		}
		path += "." + ae.Field
	} else if ae.Code == "invalid_field" {
		ae.Message = path + " " + ae.Message
	}
	ae.Field = path
	return &ae
}
