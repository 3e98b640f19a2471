package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/notifyd/notifyd/internal/callbackhosts"
	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
)

// Bounds on receiver settings.
const (
	maxNameLen        = 200
	maxSuccessBodyLen = 256
	minTimeout        = 100 * time.Millisecond
	maxTimeout        = 30 * time.Second
	maxSecretGrace    = 7 * 24 * time.Hour
	// defaultReceiverLimit is the receiver listing's page size.
	defaultReceiverLimit = 100
)

// receiverView is a receiver as the API shows it. Secrets appear only in the
// answers that create them.
type receiverView struct {
	ID             uuid.UUID     `json:"id"`
	Name           string        `json:"name"`
	CallbackURL    string        `json:"callback_url"`
	Retry          *retry.Policy `json:"retry"`
	EffectiveRetry retry.Policy  `json:"effective_retry"`
	SuccessBody    *string       `json:"success_body"`
	Timeout        string        `json:"timeout,omitempty"`
	CallbackHosts  []string      `json:"callback_hosts"` // null: overrides unrestricted
	// StatusCallbackURL gets the receiver's own operational events.
	StatusCallbackURL *string `json:"status_callback_url"`
	// Active is the admin's switch (false: new notifications refused);
	// the health lifecycle is healthView.
	Active bool `json:"active"`
	// Delivery is push (callbacks) or pull (stream and ack).
	Delivery string `json:"delivery"`
	healthView
	Operator      bool       `json:"operator,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	APIKey        string     `json:"api_key,omitempty"`
	SigningSecret string     `json:"signing_secret,omitempty"`
	PreviousUntil *time.Time `json:"previous_secret_expires_at,omitempty"`
}

func (s *Server) view(r *store.Receiver) *receiverView {
	v := &receiverView{ID: r.ID, Name: r.Name, CallbackURL: r.CallbackURL, Retry: r.Retry, EffectiveRetry: s.cfg.Retry,
		SuccessBody: r.SuccessBody, CallbackHosts: r.CallbackHosts, Active: r.Active, Delivery: r.Delivery, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		healthView: healthOf(r), Operator: r.Operator}
	if r.StatusCallbackURL != "" {
		v.StatusCallbackURL = &r.StatusCallbackURL
	}
	if r.Retry != nil {
		v.EffectiveRetry = r.Retry.Merge(s.cfg.Retry)
	}
	if r.Timeout > 0 {
		v.Timeout = r.Timeout.String()
	}
	return v
}

// receiverInput is the body of create and update. Raw fields let PATCH tell
// "absent" (leave alone) from null (reset to the default).
type receiverInput struct {
	Name        *string         `json:"name"`
	CallbackURL *string         `json:"callback_url"`
	Retry       json.RawMessage `json:"retry"`
	SuccessBody json.RawMessage `json:"success_body"`
	Timeout     json.RawMessage `json:"timeout"`
	Active      *bool           `json:"active"`
	// CallbackHosts: absent leaves it, null lifts the restriction, a list
	// (possibly empty) replaces it.
	CallbackHosts json.RawMessage `json:"callback_hosts"`
	// Delivery is "push" (callbacks, the default) or "pull" (the receiver
	// reads GET /v1/notifications/stream and acknowledges).
	Delivery *string `json:"delivery"`
	// StatusCallbackURL: absent leaves it, null removes it.
	StatusCallbackURL json.RawMessage `json:"status_callback_url"`
}

var jsonNull = []byte("null")

// patch validates in and turns it into a store patch.
func (s *Server) patch(in *receiverInput) (store.ReceiverPatch, error) {
	var p store.ReceiverPatch
	if in.Name != nil {
		if *in.Name == "" || len(*in.Name) > maxNameLen || !utf8.ValidString(*in.Name) {
			return p, fieldError("name", fmt.Sprintf("must be 1 to %d characters of UTF-8", maxNameLen))
		}
		p.Name = in.Name
	}
	if in.Delivery != nil {
		if *in.Delivery != store.DeliveryPush && *in.Delivery != store.DeliveryPull {
			return p, fieldError("delivery", `must be "push" or "pull"`)
		}
		p.Delivery = in.Delivery
	}
	// A pull receiver is never called: it may go without a callback URL.
	pullWithoutURL := in.CallbackURL != nil && *in.CallbackURL == "" && in.Delivery != nil && *in.Delivery == store.DeliveryPull
	if in.CallbackURL != nil && !pullWithoutURL {
		if _, err := s.cfg.Targets.ValidateURL(*in.CallbackURL); err != nil {
			return p, fieldError("callback_url", err.Error())
		}
	}
	p.CallbackURL = in.CallbackURL
	switch {
	case in.Retry == nil:
	case bytes.Equal(in.Retry, jsonNull):
		p.ClearRetry = true
	default:
		var pol retry.Policy
		if err := json.Unmarshal(in.Retry, &pol); err != nil {
			return p, fieldError("retry", err.Error())
		}
		if err := pol.Validate(); err != nil {
			return p, fieldError("retry", err.Error())
		}
		if err := pol.Merge(s.cfg.Retry).Validate(); err != nil {
			return p, fieldError("retry", err.Error())
		}
		p.Retry = &pol
	}
	switch {
	case in.SuccessBody == nil:
	case bytes.Equal(in.SuccessBody, jsonNull):
		p.ClearSuccessBody = true
	default:
		var body string
		if err := json.Unmarshal(in.SuccessBody, &body); err != nil || body == "" || len(body) > maxSuccessBodyLen {
			return p, fieldError("success_body", fmt.Sprintf("must be a non-empty string of at most %d bytes, or null", maxSuccessBodyLen))
		}
		p.SuccessBody = &body
	}
	switch {
	case in.Timeout == nil:
	case bytes.Equal(in.Timeout, jsonNull):
		zero := time.Duration(0)
		p.Timeout = &zero
	default:
		var raw string
		d, err := time.Duration(0), json.Unmarshal(in.Timeout, &raw)
		if err == nil {
			d, err = time.ParseDuration(raw)
		}
		if err != nil || d < minTimeout || d > maxTimeout {
			return p, fieldError("timeout", fmt.Sprintf("must be a duration between %s and %s, like \"5s\"", minTimeout, maxTimeout))
		}
		p.Timeout = &d
	}
	p.Active = in.Active
	switch {
	case in.CallbackHosts == nil:
	case bytes.Equal(in.CallbackHosts, jsonNull):
		p.ClearCallbackHosts = true
	default:
		hosts := []string{}
		if err := json.Unmarshal(in.CallbackHosts, &hosts); err != nil {
			return p, fieldError("callback_hosts", "must be a list of host names or *.domain patterns, or null")
		}
		if err := callbackhosts.ValidateList(hosts); err != nil {
			return p, fieldError("callback_hosts", err.Error())
		}
		p.CallbackHosts = &hosts
	}
	return p, s.patchStatusCallback(in, &p)
}

// patchStatusCallback reads status_callback_url: checked like callback_url
// (it is the admin's, so callback_hosts does not restrict it).
func (s *Server) patchStatusCallback(in *receiverInput, p *store.ReceiverPatch) error {
	switch {
	case in.StatusCallbackURL == nil:
		return nil
	case bytes.Equal(in.StatusCallbackURL, jsonNull):
		empty := ""
		p.StatusCallbackURL = &empty
		return nil
	}
	var u string
	if err := json.Unmarshal(in.StatusCallbackURL, &u); err != nil {
		return fieldError("status_callback_url", "must be a URL or null")
	}
	if _, err := s.cfg.Targets.ValidateURL(u); err != nil {
		return fieldError("status_callback_url", err.Error())
	}
	p.StatusCallbackURL = &u
	return nil
}

func (s *Server) createReceiver(c echo.Context) error {
	var in receiverInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return fieldError("name", "is required")
	}
	pull := in.Delivery != nil && *in.Delivery == store.DeliveryPull
	if in.CallbackURL == nil && !pull {
		return fieldError("callback_url", "is required (unless delivery is \"pull\")")
	}
	if in.CallbackURL == nil {
		empty := ""
		in.CallbackURL = &empty
	}
	if in.Active != nil {
		return fieldError("active", "cannot be set on create")
	}
	p, err := s.patch(&in)
	if err != nil {
		return err
	}
	secret, err := signing.NewSecret()
	if err != nil {
		return err
	}
	r := &store.Receiver{ID: uuid.New(), Name: *p.Name, CallbackURL: *p.CallbackURL, SigningSecret: secret,
		Retry: p.Retry, SuccessBody: p.SuccessBody, Delivery: store.DeliveryPush}
	if p.Delivery != nil {
		r.Delivery = *p.Delivery
	}
	if p.Timeout != nil {
		r.Timeout = *p.Timeout
	}
	if p.CallbackHosts != nil {
		r.CallbackHosts = *p.CallbackHosts
	}
	if p.StatusCallbackURL != nil {
		r.StatusCallbackURL = *p.StatusCallbackURL
	}
	apiKey := newAPIKey()
	ctx := c.Request().Context()
	key := &store.APIKey{ID: uuid.New(), Name: "default", Prefix: shownPrefix(apiKey)}
	if err := s.store.CreateReceiverWithKey(ctx, r, key, store.HashAPIKey(apiKey)); err != nil {
		return err
	}
	setAuditTarget(c, r.ID.String())
	s.publish(c, r)
	v := s.view(r)
	v.APIKey, v.SigningSecret = apiKey, secret
	return c.JSON(http.StatusCreated, v)
}

// publish updates the producers' registry. A failure is logged, not
// returned: the periodic sync repairs it, and the receiver is created.
func (s *Server) publish(c echo.Context, r *store.Receiver) {
	ctx := c.Request().Context()
	err := registry.Publish(ctx, s.rdb, r.ID, r.Active)
	if err == nil {
		err = registry.PublishCallbackHosts(ctx, s.rdb, r.ID, r.CallbackHosts)
	}
	if err != nil {
		s.cfg.Logger.Warn("publish receiver to registry", "receiver_id", r.ID, "err", err)
	}
}

func (s *Server) getReceiver(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	r, err := s.store.GetReceiver(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.view(r))
}

// receiverPage is the body of GET /v1/receivers.
type receiverPage struct {
	Data       []*receiverView `json:"data"`
	NextCursor *string         `json:"next_cursor"`
	HasMore    bool            `json:"has_more"`
}

// receiverListParams are the query parameters GET /v1/receivers accepts.
var receiverListParams = []string{"limit", "cursor"}

// listReceivers serves GET /v1/receivers (admin): every receiver, active or
// not, oldest first, paged with the listings' cursor (ascending).
func (s *Server) listReceivers(c echo.Context) error {
	q := c.QueryParams()
	for name := range q {
		if !slices.Contains(receiverListParams, name) {
			return fieldError(name, fmt.Sprintf("%s is not a known query parameter (known: %s)", name, strings.Join(receiverListParams, ", ")))
		}
	}
	limit := defaultReceiverLimit
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxListLimit {
			return fieldError("limit", fmt.Sprintf("must be an integer from 1 to %d", maxListLimit))
		}
		limit = n
	}
	var after *store.Position
	if q.Has("cursor") {
		var err error
		if after, err = decodeCursor(q.Get("cursor"), false); err != nil {
			return err
		}
	}
	// One more than the page tells whether another page follows.
	rows, err := s.store.ListReceivers(c.Request().Context(), after, limit+1)
	if err != nil {
		return err
	}
	page := receiverPage{Data: []*receiverView{}, HasMore: len(rows) > limit}
	for i, r := range rows {
		if i == limit {
			break
		}
		page.Data = append(page.Data, s.view(r))
	}
	if page.HasMore {
		last := rows[limit-1]
		cur := encodeCursor(store.Position{CreatedAt: last.CreatedAt, ID: last.ID}, false)
		page.NextCursor = &cur
	}
	return c.JSON(http.StatusOK, page)
}

func (s *Server) updateReceiver(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in receiverInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	p, err := s.patch(&in)
	if err != nil {
		return err
	}
	if err := s.checkPushURL(c, id, p); err != nil {
		return err
	}
	r, err := s.store.UpdateReceiver(c.Request().Context(), id, p)
	if err != nil {
		return err
	}
	if in.Active != nil && *in.Active && r.Status == store.ReceiverDisabled {
		// "active": true is also how an admin enables a disabled receiver.
		if r, err = s.enable(c, id); err != nil {
			return err
		}
	}
	s.auth.creds.invalidate(c.Request().Context(), s.rdb, invalidateReceiver, r.ID)
	s.publish(c, r)
	return c.JSON(http.StatusOK, s.view(r))
}

func (s *Server) rotateSecret(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in struct {
		Grace string `json:"grace"`
	}
	if c.Request().ContentLength != 0 {
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
	}
	grace := s.cfg.SecretGrace
	if in.Grace != "" {
		d, err := time.ParseDuration(in.Grace)
		if err != nil || d < 0 || d > maxSecretGrace {
			return fieldError("grace", fmt.Sprintf("must be a duration between 0s and %s", maxSecretGrace))
		}
		grace = d
	}
	secret, err := signing.NewSecret()
	if err != nil {
		return err
	}
	r, err := s.store.RotateSecret(c.Request().Context(), id, secret, grace)
	if err != nil {
		return err
	}
	v := s.view(r)
	v.SigningSecret, v.PreviousUntil = secret, r.PreviousSecretUntil
	return c.JSON(http.StatusOK, v)
}

// checkPushURL refuses a change that would leave a push receiver without a
// callback URL: a pull receiver switched to push must be given one.
func (s *Server) checkPushURL(c echo.Context, id uuid.UUID, p store.ReceiverPatch) error {
	push := p.Delivery != nil && *p.Delivery == store.DeliveryPush
	if !push || p.CallbackURL != nil {
		return nil
	}
	r, err := s.store.GetReceiver(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if r.CallbackURL == "" {
		return fieldError("callback_url", "is required to switch delivery to \"push\"")
	}
	return nil
}
