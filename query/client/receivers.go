package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// ReceiverSettings is what CreateReceiver and UpdateReceiver send. Empty
// fields are left out (update: left as they are); the raw fields take the
// JSON null to reset a setting to the service default.
type ReceiverSettings struct {
	Name        string          `json:"name,omitempty"`
	CallbackURL string          `json:"callback_url,omitempty"`
	Retry       json.RawMessage `json:"retry,omitempty"`
	SuccessBody json.RawMessage `json:"success_body,omitempty"`
	Timeout     json.RawMessage `json:"timeout,omitempty"`
	Active      *bool           `json:"active,omitempty"`
}

// ReceiverSecrets is a receiver with the credentials an answer shows once:
// its first API key (create only) and its new signing secret.
type ReceiverSecrets struct {
	Receiver
	APIKey        string `json:"api_key,omitempty"`
	SigningSecret string `json:"signing_secret"`
}

// CreateReceiver creates a receiver (admin token).
func (c *Client) CreateReceiver(ctx context.Context, s ReceiverSettings) (*ReceiverSecrets, error) {
	var r ReceiverSecrets
	if _, err := c.do(ctx, http.MethodPost, "/v1/receivers", nil, s, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// UpdateReceiver changes the settings given (admin token).
func (c *Client) UpdateReceiver(ctx context.Context, id string, s ReceiverSettings) (*Receiver, error) {
	var r Receiver
	if _, err := c.do(ctx, http.MethodPatch, "/v1/receivers/"+url.PathEscape(id), nil, s, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RotateSecret gives the receiver a new signing secret; the previous one
// keeps signing alongside for the server's grace period (24 h by default).
// The admin token or the receiver's own API key may rotate.
func (c *Client) RotateSecret(ctx context.Context, id string) (*ReceiverSecrets, error) {
	var r ReceiverSecrets
	if _, err := c.do(ctx, http.MethodPost, "/v1/receivers/"+url.PathEscape(id)+"/rotate-secret", nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
