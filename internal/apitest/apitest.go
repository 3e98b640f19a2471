// Package apitest speaks to a running notifyd HTTP API from a test: JSON
// requests with a bearer token, receivers created through the admin API,
// waiting for a notification's status, and callback endpoints on loopback.
//
// It owns the client side of those tests only. It must not import query,
// worker, notifier or internal/store: query's in-package tests use it around
// the server they test, and an import of query here would be a cycle. A whole
// notifyd for it to talk to is started by cmd/notifyd/notifydtest.
package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Tokens the in-process servers of the tests accept.
const (
	AdminToken    = "apitest-admin-token"
	ProducerToken = "apitest-producer-token"
)

// Client makes requests to the API at URL.
type Client struct {
	// URL is the API's base URL.
	URL string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	t    testing.TB
}

// NewClient returns a client of the API at url for t.
func NewClient(t testing.TB, url string) *Client { return &Client{URL: url, t: t} }

// With is c for a subtest: failures stop t, not the parent test.
func (c *Client) With(t testing.TB) *Client {
	d := *c
	d.t = t
	return &d
}

// Do makes one API request with token (none if empty); a body that is a
// string is sent as is, anything else as JSON. It returns the status code
// and the raw answer, and fails the test if there is no answer.
func (c *Client) Do(method, path, token string, body any) (int, []byte) {
	c.t.Helper()
	code, raw, err := c.Try(method, path, token, body, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return code, raw
}

// Try is Do that returns errors instead of failing the test, for requests
// made from other goroutines or while a fault is injected; a 2xx answer is
// decoded into out (if not nil).
func (c *Client) Try(method, path, token string, body, out any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("%s %s: decode %s: %w", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw, nil
}

// Call is Do that fails the test unless the answer has status want, and
// decodes the answer into out (if not nil).
func (c *Client) Call(method, path, token string, body any, want int, out any) {
	c.t.Helper()
	code, raw := c.Do(method, path, token, body)
	if code != want {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, code, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// Receiver is a receiver as created, with its secrets.
type Receiver struct {
	ID            string `json:"id"`
	APIKey        string `json:"api_key"`
	SigningSecret string `json:"signing_secret"`
}

// CreateReceiver registers a receiver through the admin API; extra fields
// (retry, success_body, …) are merged into the request.
func (c *Client) CreateReceiver(callbackURL string, extra map[string]any) Receiver {
	c.t.Helper()
	body := map[string]any{"name": "merchant", "callback_url": callbackURL}
	for k, v := range extra {
		body[k] = v
	}
	var r Receiver
	c.Call(http.MethodPost, "/v1/receivers", AdminToken, body, http.StatusCreated, &r)
	return r
}

// WaitStatus polls the API until every notification has the status given,
// failing the test after timeout.
func (c *Client) WaitStatus(timeout time.Duration, status string, ids ...string) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, id := range ids {
		for {
			var n struct{ Status string }
			c.Call(http.MethodGet, "/v1/notifications/"+id, AdminToken, nil, http.StatusOK, &n)
			if n.Status == status {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("notification %s: status %s, want %s", id, n.Status, status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// CallbackServer is a receiver endpoint on loopback answering with a
// settable status code; it counts requests.
type CallbackServer struct {
	*httptest.Server
	status atomic.Int64
	hits   atomic.Int64
}

// NewCallbackServer answers every callback with code until SetStatus.
func NewCallbackServer(t testing.TB, code int) *CallbackServer {
	cs := &CallbackServer{}
	cs.status.Store(int64(code))
	cs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		cs.hits.Add(1)
		w.WriteHeader(int(cs.status.Load()))
	}))
	t.Cleanup(cs.Close)
	return cs
}

// SetStatus changes the answer for later callbacks.
func (cs *CallbackServer) SetStatus(code int) { cs.status.Store(int64(code)) }

// Hits is how many callbacks arrived so far.
func (cs *CallbackServer) Hits() int { return int(cs.hits.Load()) }
