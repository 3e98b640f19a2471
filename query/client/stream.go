package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Pull delivery: a receiver whose delivery is "pull" reads its
// notifications from Stream and acknowledges each with Ack once processed.

// Ack acknowledges one notification (a pull receiver's key): it becomes
// delivered and is offered no more. Acknowledging again is harmless.
func (c *Client) Ack(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/notifications/"+url.PathEscape(id)+"/ack", nil, nil, nil)
	return err
}

// AckResult sorts the ids of an AckBatch.
type AckResult struct {
	Acknowledged []string `json:"acknowledged"` // delivered, by this call or before
	Cancelled    []string `json:"cancelled"`
	NotFound     []string `json:"not_found"` // unknown, or another receiver's
}

// AckBatch acknowledges up to 1000 notifications in one request.
func (c *Client) AckBatch(ctx context.Context, ids []string) (*AckResult, error) {
	var out AckResult
	if _, err := c.do(ctx, http.MethodPost, "/v1/notifications/ack", nil, map[string]any{"ids": ids}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Event is one notification from the stream, with exactly the headers and
// body a callback would carry: verify it with any Standard Webhooks
// library (query/webhook in Go) and de-duplicate on NotificationID.
type Event struct {
	// ID is the event's position; empty for reminders (offers of a
	// notification sent before), which do not move the position.
	ID             string
	NotificationID string
	Attempt        int
	Headers        map[string]string
	Body           []byte
}

// StreamOptions qualifies Stream.
type StreamOptions struct {
	// LastEventID resumes after this event (Stream.LastEventID of an
	// earlier stream); empty starts with every unacknowledged notification.
	LastEventID string
	// IdleTimeout ends a stream on which nothing, not even a heartbeat,
	// arrived for this long (default 1 min; the server beats every 15 s).
	IdleTimeout time.Duration
}

// maxEventLine bounds one line of the stream: a data line holds a whole
// envelope, escaped.
const maxEventLine = 8 << 20

// Stream is an open event stream. Next is not safe for concurrent use.
type Stream struct {
	body    io.ReadCloser
	lines   *bufio.Scanner
	idle    *time.Timer
	timeout time.Duration
	last    string
	close   sync.Once
}

// Stream opens the pull receiver's event stream. It does not use the HTTP
// client's overall timeout (a stream is meant to last); StreamOptions'
// IdleTimeout detects a dead connection instead.
func (c *Client) Stream(ctx context.Context, opts StreamOptions) (*Stream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/notifications/stream", nil)
	if err != nil {
		return nil, fmt.Errorf("notifyd: stream: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Authorization", "Bearer "+c.token)
	if opts.LastEventID != "" {
		req.Header.Set("Last-Event-ID", opts.LastEventID)
	}
	hc := &http.Client{Transport: c.http.Transport, CheckRedirect: c.http.CheckRedirect, Jar: c.http.Jar}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("notifyd: stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	s := &Stream{body: resp.Body, lines: bufio.NewScanner(resp.Body), timeout: opts.IdleTimeout, last: opts.LastEventID}
	if s.timeout <= 0 {
		s.timeout = time.Minute
	}
	s.lines.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	s.idle = time.AfterFunc(s.timeout, func() { s.Close() })
	return s, nil
}

// LastEventID is the id of the last event with one: resume from it.
func (s *Stream) LastEventID() string { return s.last }

// Close ends the stream; a Next in progress returns an error.
func (s *Stream) Close() error {
	var err error
	s.close.Do(func() {
		s.idle.Stop()
		err = s.body.Close()
	})
	return err
}

// Next waits for the next notification. It returns io.EOF when the server
// ends the stream (shutting down: reconnect with LastEventID).
func (s *Stream) Next() (*Event, error) {
	var id, event string
	var data strings.Builder
	hasID := false
	for s.lines.Scan() {
		s.idle.Reset(s.timeout)
		line := s.lines.Text()
		if line == "" { // an event ends
			if hasID {
				s.last = id
			}
			if event == "notification" && data.Len() > 0 {
				return decodeEvent(id, hasID, data.String())
			}
			id, event, hasID = "", "", false
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: the heartbeat
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id, hasID = value, true
		case "event":
			event = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	if err := s.lines.Err(); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("notifyd: stream: %w", err)
	}
	return nil, io.EOF
}

func decodeEvent(id string, hasID bool, data string) (*Event, error) {
	var d struct {
		ID      string            `json:"id"`
		Attempt int               `json:"attempt"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		return nil, fmt.Errorf("notifyd: stream: decode event: %w", err)
	}
	e := &Event{NotificationID: d.ID, Attempt: d.Attempt, Headers: d.Headers, Body: []byte(d.Body)}
	if hasID {
		e.ID = id
	}
	return e, nil
}
