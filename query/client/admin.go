package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// The calls below are the operator's (admin token): receivers, their API
// keys, and producer records.

// Null resets a ReceiverSettings field to the service default on update.
var Null = json.RawMessage("null")

// ReceiverSettings is the body of CreateReceiver and UpdateReceiver. Fields
// left nil are not sent: on create they take the defaults, on update they
// keep their value. The raw fields take JSON as the API documents it (a
// retry policy object, a string, a list), or Null to reset on update.
type ReceiverSettings struct {
	Name        *string         `json:"name,omitempty"`
	CallbackURL *string         `json:"callback_url,omitempty"`
	Retry       json.RawMessage `json:"retry,omitempty"`
	SuccessBody json.RawMessage `json:"success_body,omitempty"`
	// Timeout is a JSON duration string, like "5s".
	Timeout json.RawMessage `json:"timeout,omitempty"`
	// CallbackHosts limits per-notification callback URL overrides: a JSON
	// list of host names or *.domain patterns ([] allows none), or Null for
	// no limit.
	CallbackHosts json.RawMessage `json:"callback_hosts,omitempty"`
	// Active false deactivates the receiver (update only).
	Active *bool `json:"active,omitempty"`
}

// ReceiverWithSecrets is a receiver with the secrets shown only when they
// are made: the API key and signing secret on create, the new signing
// secret on rotation.
type ReceiverWithSecrets struct {
	Receiver
	APIKey        string `json:"api_key,omitempty"`
	SigningSecret string `json:"signing_secret,omitempty"`
	// PreviousSecretExpiresAt is when the secret replaced by a rotation
	// stops signing.
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
}

// ReceiverPage is one page of ListReceivers.
type ReceiverPage struct {
	Data       []*Receiver `json:"data"`
	NextCursor string      `json:"next_cursor"`
	HasMore    bool        `json:"has_more"`
}

// CreateReceiver creates a receiver; Name and CallbackURL are required.
func (c *Client) CreateReceiver(ctx context.Context, s ReceiverSettings) (*ReceiverWithSecrets, error) {
	var out ReceiverWithSecrets
	if _, err := c.do(ctx, http.MethodPost, "/v1/receivers", nil, s, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateReceiver changes the fields of s that are set.
func (c *Client) UpdateReceiver(ctx context.Context, id string, s ReceiverSettings) (*Receiver, error) {
	var out Receiver
	if _, err := c.do(ctx, http.MethodPatch, "/v1/receivers/"+url.PathEscape(id), nil, s, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RotateSecret gives the receiver a new signing secret; the old one keeps
// signing for grace (0: the server's default, 24 h unless configured).
func (c *Client) RotateSecret(ctx context.Context, id string, grace time.Duration) (*ReceiverWithSecrets, error) {
	var body any
	if grace > 0 {
		body = map[string]string{"grace": grace.String()}
	}
	var out ReceiverWithSecrets
	if _, err := c.do(ctx, http.MethodPost, "/v1/receivers/"+url.PathEscape(id)+"/rotate-secret", nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListReceivers returns one page of receivers, oldest first: limit (0: the
// server's default, 100) from cursor ("" for the first page) on.
func (c *Client) ListReceivers(ctx context.Context, limit int, cursor string) (*ReceiverPage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var page ReceiverPage
	if _, err := c.do(ctx, http.MethodGet, "/v1/receivers", q, nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// AllReceivers iterates over every receiver, page after page, like All.
func (c *Client) AllReceivers(ctx context.Context, pageSize int) iter.Seq2[*Receiver, error] {
	return paged("", "list receivers", func(cursor string) ([]*Receiver, string, bool, error) {
		page, err := c.ListReceivers(ctx, pageSize, cursor)
		if err != nil {
			return nil, "", false, err
		}
		return page.Data, page.NextCursor, page.HasMore, nil
	})
}

// APIKey is one of a receiver's API keys. Key is set only in the answer to
// CreateAPIKey; listings show the Prefix.
type APIKey struct {
	ID         string     `json:"id"`
	ReceiverID string     `json:"receiver_id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Key        string     `json:"key,omitempty"`
}

// CreateAPIKey adds a named API key to the receiver (at most 10).
func (c *Client) CreateAPIKey(ctx context.Context, receiverID, name string) (*APIKey, error) {
	var out APIKey
	if _, err := c.do(ctx, http.MethodPost, "/v1/receivers/"+url.PathEscape(receiverID)+"/api-keys", nil,
		map[string]string{"name": name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAPIKeys returns the receiver's keys, without the keys themselves.
func (c *Client) ListAPIKeys(ctx context.Context, receiverID string) ([]APIKey, error) {
	var out struct {
		Data []APIKey `json:"data"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/receivers/"+url.PathEscape(receiverID)+"/api-keys", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// RevokeAPIKey revokes one of the receiver's keys.
func (c *Client) RevokeAPIKey(ctx context.Context, receiverID, keyID string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/receivers/"+url.PathEscape(receiverID)+"/api-keys/"+url.PathEscape(keyID), nil, nil, nil)
	return err
}

// Producer is a producer record. Token is set only in the answer to
// CreateProducer.
type Producer struct {
	ID           string     `json:"id"`
	Name         string     `json:"name"`
	Prefix       string     `json:"prefix"`
	AllReceivers bool       `json:"all_receivers"`
	Receivers    []string   `json:"receivers"`
	CreatedAt    time.Time  `json:"created_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
	Token        string     `json:"token,omitempty"`
}

// NewProducer is the body of CreateProducer: the receivers the producer may
// send to, or all of them.
type NewProducer struct {
	Name         string
	AllReceivers bool
	Receivers    []string
}

// MarshalJSON writes receivers as the API takes them: "all" or a list.
func (p NewProducer) MarshalJSON() ([]byte, error) {
	var receivers any = p.Receivers
	if p.AllReceivers {
		receivers = "all"
	}
	return json.Marshal(map[string]any{"name": p.Name, "receivers": receivers})
}

// CreateProducer creates a producer record and returns it with its token.
func (c *Client) CreateProducer(ctx context.Context, p NewProducer) (*Producer, error) {
	var out Producer
	if _, err := c.do(ctx, http.MethodPost, "/v1/producers", nil, p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListProducers returns the producer records (static tokens are not listed).
func (c *Client) ListProducers(ctx context.Context) ([]Producer, error) {
	var out struct {
		Data []Producer `json:"data"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/producers", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// DeleteProducer revokes a producer record's token.
func (c *Client) DeleteProducer(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/producers/"+url.PathEscape(id), nil, nil, nil)
	return err
}
