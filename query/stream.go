package query

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/envelope"
	"github.com/notifyd/notifyd/internal/pullfeed"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
)

// GET /v1/notifications/stream: a pull receiver's notifications as
// Server-Sent Events. Each event is
//
//	id: <listing cursor>          (absent on reminders, see below)
//	event: notification
//	data: {"id": …, "attempt": n, "headers": {"Webhook-Id": …, "Webhook-Signature": …, …}, "body": "<the callback's body>"}
//
// headers and body are exactly what a callback would carry (body is the
// envelope's bytes as a JSON string, so its signature verifies on the
// decoded string). A connection first catches up, oldest first, on the
// receiver's pending (unacknowledged) notifications after Last-Event-ID
// (all of them without one), then sends each new offer as the workers make
// it. The id is the position in that order (a listing cursor, order asc):
// resuming with it never repeats what was sent. A reminder, an offer of a
// notification already behind that position (the schedule's next attempt,
// or a manual redelivery), carries no id, so it does not move the
// position. Comment lines are heartbeats.

const (
	streamRoute = "/notifications/stream" // under /v1
	// streamPage is the catch-up's page size.
	streamPage = 100
	// streamWriteTimeout bounds one write to a client that stopped reading.
	streamWriteTimeout = 30 * time.Second
	// streamSentMemory bounds the ids a stream remembers having sent.
	streamSentMemory = 10000
	// streamLookback is how far behind Last-Event-ID a resumed stream looks
	// for unacknowledged notifications (see resend).
	streamLookback = 5 * time.Second
	// Defaults of Config.StreamsPerReceiver and Config.StreamHeartbeat.
	defaultStreamsPerReceiver = 5
	defaultStreamHeartbeat    = 15 * time.Second
)

var errTooManyStreams = apiError(http.StatusTooManyRequests, "too_many_streams",
	"this receiver has the maximum of open streams on this API process; close one or retry later")

// streamEvent is an event's data.
type streamEvent struct {
	ID      string            `json:"id"`
	Attempt int               `json:"attempt"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// streamLimiter bounds the streams open per receiver in one API process.
type streamLimiter struct {
	mu   sync.Mutex
	open map[uuid.UUID]int
	max  int
	// closing is closed when the server shuts down: every stream ends.
	closing   chan struct{}
	closeOnce sync.Once
}

func newStreamLimiter(max int) *streamLimiter {
	return &streamLimiter{open: map[uuid.UUID]int{}, max: max, closing: make(chan struct{})}
}

func (l *streamLimiter) acquire(id uuid.UUID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[id] >= l.max {
		return false
	}
	l.open[id]++
	return true
}

func (l *streamLimiter) release(id uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[id]--; l.open[id] <= 0 {
		delete(l.open, id)
	}
}

func (l *streamLimiter) closeAll() { l.closeOnce.Do(func() { close(l.closing) }) }

// stream serves GET /v1/notifications/stream (a pull receiver's key).
func (s *Server) stream(c echo.Context) error {
	p := principalOf(c)
	if p.role != roleReceiver {
		return errForbidden // a stream is one receiver's; the admin lists
	}
	after, err := lastEventID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sc := &streamConn{s: s, c: c, after: after, sent: map[uuid.UUID]bool{}}
	if err := sc.refresh(ctx, p.receiver); err != nil {
		return err
	}
	if !s.streams.acquire(p.receiver) {
		c.Response().Header().Set("Retry-After", "5")
		return errTooManyStreams
	}
	defer s.streams.release(p.receiver)
	feed, err := pullfeed.Subscribe(ctx, s.rdb, p.receiver)
	if err != nil {
		s.cfg.Logger.Warn("stream: subscribe to offers", "receiver_id", p.receiver, "err", err)
		return apiError(http.StatusServiceUnavailable, "unavailable", "the stream could not start; try again")
	}
	defer feed.Close()
	return sc.run(ctx, feed)
}

// lastEventID reads where a stream resumes: the Last-Event-ID header (an
// EventSource sends it when it reconnects) or, for clients that cannot set
// headers, the last_event_id query parameter.
func lastEventID(c echo.Context) (*store.Position, error) {
	raw := c.Request().Header.Get("Last-Event-ID")
	field := "Last-Event-ID"
	if raw == "" {
		raw, field = c.QueryParam("last_event_id"), "last_event_id"
	}
	if raw == "" {
		return nil, nil
	}
	pos, err := decodeCursor(raw, false)
	if err != nil {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "invalid_cursor", Field: field,
			Message: field + " must be the id of an event this stream sent"}
	}
	return pos, nil
}

// streamConn is one open stream.
type streamConn struct {
	s        *Server
	c        echo.Context
	receiver *store.Receiver
	signer   *signing.Signer
	// after is the position of the last event sent with an id.
	after *store.Position
	// sent holds what this connection sent, so a notification's first
	// offer is not sent again after the catch-up found it first.
	sent map[uuid.UUID]bool
}

// refresh (re)loads the receiver and its signer: at the start, and on every
// heartbeat so a secret rotation or a switch to push takes effect.
func (sc *streamConn) refresh(ctx context.Context, id uuid.UUID) error {
	qctx, cancel := context.WithTimeout(ctx, sc.s.cfg.RequestTimeout)
	defer cancel()
	r, err := sc.s.store.GetReceiver(qctx, id)
	if err != nil {
		return err
	}
	if !r.Pull() {
		return errNotPull
	}
	signer, _, err := signing.ForReceiver(r.SigningSecret, r.PreviousSecret, r.PreviousSecretUntil, time.Now())
	if err != nil {
		return fmt.Errorf("stream: receiver %s: %w", id, err)
	}
	sc.receiver, sc.signer = r, signer
	return nil
}

// run sends events until the client leaves, the receiver stops being a
// pull receiver, or the server shuts down.
func (sc *streamConn) run(ctx context.Context, feed *pullfeed.Feed) error {
	rc := http.NewResponseController(sc.c.Response())
	h := sc.c.Response().Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	sc.c.Response().WriteHeader(http.StatusOK)
	if err := sc.write(rc, []byte(": notifyd stream\nretry: 1000\n\n")); err != nil {
		return nil
	}
	if err := sc.resend(ctx, rc); err != nil {
		return sc.end(err)
	}
	if err := sc.catchUp(ctx, rc); err != nil {
		return sc.end(err)
	}
	tick := time.NewTicker(sc.s.cfg.StreamHeartbeat)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-sc.s.streams.closing:
			return nil
		case m, open := <-feed.C():
			if !open {
				return nil
			}
			if o, perr := pullfeed.Parse(m); perr == nil {
				err = sc.offer(ctx, rc, o)
			}
		case <-tick.C:
			err = sc.heartbeat(ctx, rc)
		}
		if err != nil {
			return sc.end(err)
		}
	}
}

// end logs why a stream ended early, unless the client left.
func (sc *streamConn) end(err error) error {
	if !errors.Is(err, errClientGone) && sc.c.Request().Context().Err() == nil {
		sc.s.cfg.Logger.Info("stream ended", "receiver_id", sc.receiver.ID, "err", err)
	}
	return nil
}

var errClientGone = errors.New("stream: client gone")

// heartbeat keeps proxies from closing an idle stream, picks up receiver
// changes, and catches up on anything a lost announcement left out.
func (sc *streamConn) heartbeat(ctx context.Context, rc *http.ResponseController) error {
	if err := sc.write(rc, []byte(": heartbeat\n\n")); err != nil {
		return err
	}
	if err := sc.refresh(ctx, sc.receiver.ID); err != nil {
		return err
	}
	return sc.catchUp(ctx, rc)
}

// catchUp sends, oldest first, every pending notification after the
// stream's position.
func (sc *streamConn) catchUp(ctx context.Context, rc *http.ResponseController) error {
	for {
		rows, more, err := sc.pending(ctx, store.ListFilter{After: sc.after})
		if err != nil {
			return err
		}
		for _, n := range rows {
			if err := sc.send(rc, n, max(n.Attempts, 1), true); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

// resend, on a resumed stream, sends again (as reminders, without ids) the
// pending notifications up to streamLookback behind Last-Event-ID: those
// the client got but had not acknowledged when the connection broke, and
// any whose insert committed after a later one had been sent (created_at
// is the inserting transaction's clock, so commits can land a moment out of
// order). Older unacknowledged ones wait for their next offer.
func (sc *streamConn) resend(ctx context.Context, rc *http.ResponseController) error {
	if sc.after == nil {
		return nil
	}
	upTo := *sc.after
	from, until := upTo.CreatedAt.Add(-streamLookback), upTo.CreatedAt.Add(time.Microsecond)
	rows, _, err := sc.pending(ctx, store.ListFilter{CreatedAfter: &from, CreatedBefore: &until})
	if err != nil {
		return err
	}
	for _, n := range rows {
		if beyond(store.Position{CreatedAt: n.CreatedAt, ID: n.ID}, upTo) {
			continue // the catch-up sends it, with its id
		}
		if err := sc.send(rc, n, max(n.Attempts, 1), false); err != nil {
			return err
		}
	}
	return nil
}

// pending reads one page of the receiver's pending notifications, oldest
// first, narrowed by f's position or time range.
func (sc *streamConn) pending(ctx context.Context, f store.ListFilter) ([]*store.Notification, bool, error) {
	id := sc.receiver.ID
	f.ReceiverID, f.Statuses, f.Limit, f.MaxBytes = &id, []string{store.StatusPending}, streamPage, sc.s.cfg.ListMaxBytes
	qctx, cancel := context.WithTimeout(ctx, sc.s.cfg.RequestTimeout)
	defer cancel()
	return sc.s.store.ListNotifications(qctx, f)
}

// offer handles a worker's announcement. A manual redelivery is sent as
// it is, whatever the notification's status (someone asked for it). A
// pending notification beyond the position is new: the catch-up sends it,
// in order with anything else new. One behind it is a reminder, sent unless
// it is the first offer of what this connection has just sent.
func (sc *streamConn) offer(ctx context.Context, rc *http.ResponseController, o pullfeed.Offer) error {
	qctx, cancel := context.WithTimeout(ctx, sc.s.cfg.RequestTimeout)
	n, err := sc.s.store.GetNotification(qctx, o.NotificationID)
	cancel()
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case n.ReceiverID != sc.receiver.ID || n.Status == store.StatusCancelled:
		return nil
	case o.Attempt < 0:
		return sc.send(rc, n, o.Attempt, false)
	case n.Status != store.StatusPending:
		return nil // acknowledged since it was offered
	}
	if sc.after == nil || beyond(store.Position{CreatedAt: n.CreatedAt, ID: n.ID}, *sc.after) {
		return sc.catchUp(ctx, rc)
	}
	if o.Attempt == 1 && sc.sent[n.ID] {
		return nil
	}
	return sc.send(rc, n, o.Attempt, false)
}

// beyond reports whether p sorts after q in the listing's ascending order.
func beyond(p, q store.Position) bool {
	if !p.CreatedAt.Equal(q.CreatedAt) {
		return p.CreatedAt.After(q.CreatedAt)
	}
	return bytes.Compare(p.ID[:], q.ID[:]) > 0
}

// send writes one notification as an event, signed now. advance gives it
// an id (its position) and moves the stream's position to it.
func (sc *streamConn) send(rc *http.ResponseController, n *store.Notification, attempt int, advance bool) error {
	body, err := envelope.Envelope{ID: n.ID.String(), Type: n.EventType, ReceiverID: n.ReceiverID.String(),
		IdempotencyKey: n.IdempotencyKey, CreatedAt: n.CreatedAt, Data: n.Payload}.Encode()
	if err != nil {
		return err
	}
	data, err := json.Marshal(streamEvent{ID: n.ID.String(), Attempt: attempt,
		Headers: envelope.Headers(sc.signer, n.ID.String(), time.Now(), body, attempt), Body: string(body)})
	if err != nil {
		return err
	}
	var ev bytes.Buffer
	pos := store.Position{CreatedAt: n.CreatedAt, ID: n.ID}
	if advance {
		ev.WriteString("id: " + encodeCursor(pos, false) + "\n")
	}
	ev.WriteString("event: notification\ndata: ")
	ev.Write(data)
	ev.WriteString("\n\n")
	if err := sc.write(rc, ev.Bytes()); err != nil {
		return err
	}
	if advance {
		sc.after = &pos
	}
	if len(sc.sent) >= streamSentMemory {
		clear(sc.sent)
	}
	sc.sent[n.ID] = true
	return nil
}

// write sends b and flushes it, within streamWriteTimeout.
func (sc *streamConn) write(rc *http.ResponseController, b []byte) error {
	_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := sc.c.Response().Write(b); err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return nil
}
