// Package client is a small typed Go client for notifyd's HTTP API: look up
// and list notifications, read their delivery attempts, redeliver, recover a
// time range, cancel, and send (ingest) notifications; and, with the admin
// token, manage receivers, their API keys and producer records (admin.go).
//
// One token serves every call: a receiver API key ("nfy_…") sees only that
// receiver's notifications, the admin token sees everything, a producer
// token may send and cancel.
//
// It speaks to notifyd over HTTP only: it must not import the server's
// packages (query, store, tasks), so a program using it pulls in none of
// them.
//
//	c := client.New("https://notifyd.internal", os.Getenv("NOTIFYD_TOKEN"))
//	n, err := c.GetByKey(ctx, "order-1042", nil)
//	if errors.Is(err, client.ErrNotFound) {
//		// never sent, or not ours
//	}
//	for n, err := range c.All(ctx, client.ListParams{Status: client.StatusFailed}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(n.ID, n.LastError)
//	}
//
// Errors from the API are *APIError values carrying the status code and the
// API's error code, message and field; errors.Is matches them against
// ErrNotFound, ErrUnauthorized, ErrForbidden and ErrConflict.
//
// The client does not retry. Whether a failed call may be repeated depends on
// the caller: Send is idempotent by its idempotency key and reads are always
// safe, but Redeliver queues one more delivery each time it succeeds, so a
// blind retry after a lost answer delivers twice.
// APIError.Temporary tells the answers worth retrying (429, 5xx) apart.
//
// Responses are read up to a bound (64 MiB by default, WithMaxResponseSize)
// so a misbehaving server or proxy cannot exhaust the caller's memory; a
// list page of 500 notifications with the largest payloads stays under it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/buildinfo"
)

// DefaultMaxResponseSize bounds how much of one answer the client reads.
const DefaultMaxResponseSize = 64 << 20

// maxErrorBody bounds what is read of an error answer.
const maxErrorBody = 64 << 10

// Client calls one notifyd API with one token. It is safe for concurrent use.
type Client struct {
	base      string
	token     string
	http      *http.Client
	userAgent string
	maxBody   int64
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (timeouts, transport, proxies). The
// default is a client with a 30 s overall timeout.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.http = hc
		}
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithMaxResponseSize bounds how many bytes of one answer are read; larger
// answers fail with ErrTooLarge.
func WithMaxResponseSize(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxBody = n
		}
	}
}

// New returns a client for the API at baseURL (scheme, host and any path
// prefix, like "https://api.example.com/notifyd") authenticating with token.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		token:     token,
		http:      &http.Client{Timeout: 30 * time.Second},
		userAgent: "notifyd-client/" + buildinfo.Version,
		maxBody:   DefaultMaxResponseSize,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Get returns a notification with its delivery attempts.
func (c *Client) Get(ctx context.Context, id string) (*Notification, error) {
	var n Notification
	if _, err := c.do(ctx, http.MethodGet, "/v1/notifications/"+url.PathEscape(id), nil, nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// GetByKeyOptions qualifies GetByKey.
type GetByKeyOptions struct {
	// ReceiverID is required with the admin token (idempotency keys are
	// unique per receiver); receivers leave it empty.
	ReceiverID string
}

// GetByKey returns the notification a producer sent with this idempotency
// key, with its delivery attempts. opts may be nil.
func (c *Client) GetByKey(ctx context.Context, key string, opts *GetByKeyOptions) (*Notification, error) {
	q := url.Values{}
	if opts != nil && opts.ReceiverID != "" {
		q.Set("receiver_id", opts.ReceiverID)
	}
	var n Notification
	if _, err := c.do(ctx, http.MethodGet, "/v1/notifications/by-key/"+url.PathEscape(key), q, nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// List returns one page of notifications.
func (c *Client) List(ctx context.Context, p ListParams) (*Page, error) {
	var page Page
	if _, err := c.do(ctx, http.MethodGet, "/v1/notifications", p.values(), nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

func (p *ListParams) values() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("status", p.Status)
	set("event_type", p.EventType)
	set("idempotency_key", p.IdempotencyKey)
	if !p.CreatedAfter.IsZero() {
		q.Set("created_after", p.CreatedAfter.UTC().Format(time.RFC3339Nano))
	}
	if !p.CreatedBefore.IsZero() {
		q.Set("created_before", p.CreatedBefore.UTC().Format(time.RFC3339Nano))
	}
	set("order", p.Order)
	if p.Limit > 0 {
		q.Set("limit", strconv.Itoa(p.Limit))
	}
	set("cursor", p.Cursor)
	set("receiver_id", p.ReceiverID)
	return q
}

// All iterates over every notification matching p, page after page, from
// p.Cursor on. An error ends the iteration after being yielded once (with a
// nil notification); breaking out of the loop stops fetching.
//
//	for n, err := range c.All(ctx, client.ListParams{Order: client.Ascending}) {
//		if err != nil {
//			return err
//		}
//		…
//	}
func (c *Client) All(ctx context.Context, p ListParams) iter.Seq2[*Notification, error] {
	return paged(p.Cursor, "list", func(cursor string) ([]*Notification, string, bool, error) {
		p.Cursor = cursor
		page, err := c.List(ctx, p)
		if err != nil {
			return nil, "", false, err
		}
		return page.Data, page.NextCursor, page.HasMore, nil
	})
}

// paged iterates over a listing page after page from cursor on: fetch
// returns one page, the next cursor and whether more follow.
func paged[T any](cursor, what string, fetch func(cursor string) ([]T, string, bool, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		for {
			items, next, more, err := fetch(cursor)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if !yield(it, nil) {
					return
				}
			}
			if !more {
				return
			}
			if next == "" || next == cursor {
				// A server that says "more" without a new cursor would loop forever.
				yield(zero, fmt.Errorf("notifyd: %s: has_more without a new next_cursor", what))
				return
			}
			cursor = next
		}
	}
}

// Attempts returns a notification's delivery attempts in the order they
// were made.
func (c *Client) Attempts(ctx context.Context, id string) ([]Attempt, error) {
	var out struct {
		Data []Attempt `json:"data"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/notifications/"+url.PathEscape(id)+"/attempts", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// Redeliver queues one manual redelivery of a notification, whatever its
// status (a cancelled one is refused). Each successful call sends once more.
func (c *Client) Redeliver(ctx context.Context, id string) (*Redelivery, error) {
	var out Redelivery
	if _, err := c.do(ctx, http.MethodPost, "/v1/notifications/"+url.PathEscape(id)+"/redeliver", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Recover gives every failed notification of the receiver created in
// [since, until) one more automatic attempt and returns how many it
// re-opened. A zero until means "up to now". Repeating it is harmless: the
// re-opened notifications are pending, not failed, until that attempt ends.
func (c *Client) Recover(ctx context.Context, receiverID string, since, until time.Time) (int, error) {
	body := map[string]string{"since": since.UTC().Format(time.RFC3339Nano)}
	if !until.IsZero() {
		body["until"] = until.UTC().Format(time.RFC3339Nano)
	}
	var out struct {
		Recovered int `json:"recovered"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/v1/receivers/"+url.PathEscape(receiverID)+"/recover", nil, body, &out); err != nil {
		return 0, err
	}
	return out.Recovered, nil
}

// Cancel stops further delivery of a pending notification and returns it.
func (c *Client) Cancel(ctx context.Context, id string) (*Notification, error) {
	var n Notification
	if _, err := c.do(ctx, http.MethodPost, "/v1/notifications/"+url.PathEscape(id)+"/cancel", nil, nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Send hands a notification in over HTTP (producer or admin token). It is
// idempotent by (ReceiverID, IdempotencyKey): repeating it returns the same
// id with Replayed set, or ErrConflict if the event type or payload differ.
func (c *Client) Send(ctx context.Context, n NewNotification) (*Accepted, error) {
	var out Accepted
	h, err := c.do(ctx, http.MethodPost, "/v1/notifications", nil, n, &out)
	if err != nil {
		return nil, err
	}
	out.Replayed = h.Get("Idempotent-Replayed") == "true"
	return &out, nil
}

// MaxBatch is the most notifications SendBatch takes at once.
const MaxBatch = 500

// SendBatch hands up to MaxBatch notifications in with one request
// (POST /v1/notifications/batch): each is treated as Send treats it, and
// gets its own result, in order. err is the request's own failure (an
// *APIError for a 4xx of the request as a whole, nothing recorded); a
// notification refused alone has its error in its result.
func (c *Client) SendBatch(ctx context.Context, ns []NewNotification) ([]BatchResult, error) {
	var out struct {
		Results []BatchResult `json:"results"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/v1/notifications/batch", nil, map[string]any{"notifications": ns}, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(ns) {
		return nil, fmt.Errorf("notifyd: POST /v1/notifications/batch: %d results for %d notifications", len(out.Results), len(ns))
	}
	return out.Results, nil
}

// GetReceiver returns a receiver (a receiver may read only itself).
func (c *Client) GetReceiver(ctx context.Context, id string) (*Receiver, error) {
	var r Receiver
	if _, err := c.do(ctx, http.MethodGet, "/v1/receivers/"+url.PathEscape(id), nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Enable takes a disabled receiver back (admin, or the receiver itself):
// it is attempted again, and Recover then re-sends what failed while it
// was disabled. A receiver that is not disabled is returned unchanged.
func (c *Client) Enable(ctx context.Context, receiverID string) (*Receiver, error) {
	var r Receiver
	if _, err := c.do(ctx, http.MethodPost, "/v1/receivers/"+url.PathEscape(receiverID)+"/enable", nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// do sends one request and decodes a 2xx JSON answer into out. It returns
// the answer's headers.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) (http.Header, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("notifyd: %s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("notifyd: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error repeats method and URL; keep what it wraps.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("notifyd: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, apiError(resp)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("notifyd: %s %s: read answer: %w", method, path, err)
	}
	if int64(len(raw)) > c.maxBody {
		return nil, fmt.Errorf("notifyd: %s %s: %w (more than %d bytes)", method, path, ErrTooLarge, c.maxBody)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("notifyd: %s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func apiError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{StatusCode: resp.StatusCode}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil && body.Error.Code != "" {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
		return e
	}
	e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	e.Message = strings.TrimSpace(string(raw))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "…"
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}
