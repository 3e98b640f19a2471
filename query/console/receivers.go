package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/circuit"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/query/client"
)

// healthWindow is the window of the receivers' health figures.
const healthWindow = 24 * time.Hour

type receiverRow struct {
	store.ReceiverEntry
	store.ReceiverHealth
	// CircuitUntil is when an open circuit lets a probe through; nil: closed.
	CircuitUntil *time.Time
}

type receiversData struct {
	Rows []receiverRow
	// HealthAt is when the health figures were computed (figurecache.go).
	HealthAt time.Time
}

// listReceivers shows every receiver as it is now (name, state, circuit)
// with its health over 24 h from the cache: a receiver created since the
// figures were computed shows none yet.
func (c *Console) listReceivers(w http.ResponseWriter, r *http.Request, s *session) error {
	entries, err := c.cfg.Store.ReceiverEntries(r.Context())
	if err != nil {
		return err
	}
	health, at, err := c.healthCache.get(r.Context(), c.cfg.Now(), c.cfg.Logger)
	if err != nil {
		return err
	}
	open := c.openCircuits(r.Context())
	d := receiversData{Rows: make([]receiverRow, len(entries)), HealthAt: at}
	for i, e := range entries {
		d.Rows[i] = receiverRow{ReceiverEntry: e, ReceiverHealth: health[e.ID]}
		if o, ok := open[e.ID]; ok {
			d.Rows[i].CircuitUntil = &o.Until
		}
	}
	c.render(w, http.StatusOK, "receivers", &view{Title: "Receivers", Session: s, Nav: "receivers", Data: d})
	return nil
}

// openCircuits reads the fleet's open circuits; Redis failing leaves the
// page without them rather than without the page.
func (c *Console) openCircuits(ctx context.Context) map[uuid.UUID]circuit.Open {
	if c.cfg.Redis == nil {
		return nil
	}
	open, err := circuit.All(ctx, c.cfg.Redis)
	if err != nil {
		c.cfg.Logger.Warn("console: open circuits", "err", err)
	}
	return open
}

// receiverForm is the create and edit form.
type receiverForm struct {
	ID, Name, CallbackURL, Retry, SuccessBody, Timeout string
	Error                                              string
}

func formOf(r *client.Receiver) receiverForm {
	f := receiverForm{ID: r.ID, Name: r.Name, CallbackURL: r.CallbackURL, Timeout: r.Timeout}
	if len(r.Retry) > 0 && string(r.Retry) != "null" {
		f.Retry = prettyJSON(r.Retry)
	}
	if r.SuccessBody != nil {
		f.SuccessBody = *r.SuccessBody
	}
	return f
}

// errRetryNotJSON refuses a retry policy field that is not JSON before the
// API sees it.
var errRetryNotJSON = errors.New("retry must be a JSON object, like {\"max_attempts\": 5}")

// settings turns the form into the API's fields: an empty optional field
// resets that setting to the service default.
func (f *receiverForm) settings() (client.ReceiverSettings, error) {
	s := client.ReceiverSettings{Name: nonEmpty(f.Name), CallbackURL: nonEmpty(f.CallbackURL),
		Retry: json.RawMessage("null"), SuccessBody: json.RawMessage("null"), Timeout: json.RawMessage("null")}
	if f.Retry != "" {
		if !json.Valid([]byte(f.Retry)) {
			return s, errRetryNotJSON
		}
		s.Retry = json.RawMessage(f.Retry)
	}
	if f.SuccessBody != "" {
		s.SuccessBody, _ = json.Marshal(f.SuccessBody)
	}
	if f.Timeout != "" {
		s.Timeout, _ = json.Marshal(f.Timeout)
	}
	return s, nil
}

// nonEmpty is v to send, or nil (not sent: unchanged) when the field was
// left empty.
func nonEmpty(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

func readReceiverForm(r *http.Request) receiverForm {
	get := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return receiverForm{ID: r.PathValue("id"), Name: get("name"), CallbackURL: get("callback_url"),
		Retry: get("retry"), SuccessBody: get("success_body"), Timeout: get("timeout")}
}

func (c *Console) newReceiverPage(w http.ResponseWriter, r *http.Request, s *session) error {
	c.render(w, http.StatusOK, "receiver_new", &view{Title: "New receiver", Session: s, Nav: "receivers", Data: receiverForm{}})
	return nil
}

// secretsData is the one page that shows a receiver's new credentials.
type secretsData struct {
	R       *client.ReceiverWithSecrets
	Created bool
}

func (c *Console) createReceiver(w http.ResponseWriter, r *http.Request, s *session) error {
	f := readReceiverForm(r)
	in, err := f.settings()
	if err == nil {
		// Create leaves out what is unset rather than sending nulls.
		for _, raw := range []*json.RawMessage{&in.Retry, &in.SuccessBody, &in.Timeout} {
			if string(*raw) == "null" {
				*raw = nil
			}
		}
		var created *client.ReceiverWithSecrets
		created, err = c.apiFor(s).CreateReceiver(r.Context(), in)
		if err == nil {
			c.render(w, http.StatusCreated, "secrets", &view{Title: "Receiver created", Session: s, Nav: "receivers",
				Data: secretsData{R: created, Created: true}})
			return nil
		}
	}
	return c.formError(w, s, "receiver_new", f, err)
}

// formError shows a form again with the API's complaint about a field;
// anything else is the caller's error.
func (c *Console) formError(w http.ResponseWriter, s *session, page string, f receiverForm, err error) error {
	var ae *client.APIError
	switch {
	case errors.Is(err, errRetryNotJSON):
		f.Error = err.Error()
	case asAPIError(err, &ae) && ae.StatusCode != http.StatusNotFound && ae.StatusCode < 500:
		f.Error = ae.Message
	default:
		return err
	}
	c.render(w, http.StatusUnprocessableEntity, page, &view{Title: "Receiver", Session: s, Nav: "receivers", Data: f})
	return nil
}

type receiverData struct {
	R        *client.Receiver
	Form     receiverForm
	Recent   *client.Page
	Circuit  *time.Time
	Flash    string
	Since    string
	Operator bool
}

// receiverDetail is the operator's page of one receiver.
func (c *Console) receiverDetail(w http.ResponseWriter, r *http.Request, s *session) error {
	return c.receiverPage(w, r, s, r.PathValue("id"), "receiver")
}

// account is a receiver's own page: its settings, secret rotation,
// recovery and how to verify signatures.
func (c *Console) account(w http.ResponseWriter, r *http.Request, s *session) error {
	if s.Operator() {
		http.Redirect(w, r, "/console/receivers", http.StatusSeeOther)
		return nil
	}
	return c.receiverPage(w, r, s, s.ReceiverID, "account")
}

func (c *Console) receiverPage(w http.ResponseWriter, r *http.Request, s *session, id, page string) error {
	api := c.apiFor(s)
	rcv, err := api.GetReceiver(r.Context(), id)
	if err != nil {
		return err
	}
	recent, err := api.List(r.Context(), client.ListParams{ReceiverID: rcv.ID, Limit: 20, Order: client.Descending})
	if err != nil {
		return err
	}
	d := &receiverData{R: rcv, Form: formOf(rcv), Recent: recent, Flash: flashes[r.URL.Query().Get("done")],
		Since: c.cfg.Now().Add(-24 * time.Hour).UTC().Format("2006-01-02T15:04"), Operator: s.Operator()}
	if uid, err := uuid.Parse(rcv.ID); err == nil {
		if o, ok := c.openCircuits(r.Context())[uid]; ok {
			d.Circuit = &o.Until
		}
	}
	c.render(w, http.StatusOK, page, &view{Title: rcv.Name, Session: s, Nav: page, Data: d})
	return nil
}

func (c *Console) updateReceiver(w http.ResponseWriter, r *http.Request, s *session) error {
	f := readReceiverForm(r)
	in, err := f.settings()
	if err == nil {
		if _, err = c.apiFor(s).UpdateReceiver(r.Context(), f.ID, in); err == nil {
			http.Redirect(w, r, "/console/receivers/"+url.PathEscape(f.ID)+"?done=saved", http.StatusSeeOther)
			return nil
		}
	}
	return c.formError(w, s, "receiver_edit", f, err)
}

func (c *Console) setActive(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	active, err := strconv.ParseBool(r.PostFormValue("active"))
	if err != nil {
		c.errorPage(w, r, s, http.StatusUnprocessableEntity, "active must be true or false")
		return nil
	}
	if _, err := c.apiFor(s).UpdateReceiver(r.Context(), id, client.ReceiverSettings{Active: &active}); err != nil {
		return err
	}
	http.Redirect(w, r, "/console/receivers/"+url.PathEscape(id)+"?done=saved", http.StatusSeeOther)
	return nil
}

// rotateSecret shows the new secret once; the API refuses another
// receiver's id as not found.
func (c *Console) rotateSecret(w http.ResponseWriter, r *http.Request, s *session) error {
	rotated, err := c.apiFor(s).RotateSecret(r.Context(), r.PathValue("id"), 0)
	if err != nil {
		return err
	}
	c.render(w, http.StatusOK, "secrets", &view{Title: "Signing secret rotated", Session: s, Data: secretsData{R: rotated}})
	return nil
}

// recoverFailed gives the failed notifications of a window one more attempt.
func (c *Console) recoverFailed(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	since, err1 := formTime(r.PostFormValue("since"))
	until, err2 := formTime(r.PostFormValue("until"))
	if err1 != nil || err2 != nil || since.IsZero() {
		c.errorPage(w, r, s, http.StatusUnprocessableEntity, "since (required) and until must be times like 2026-11-21T22:15 (UTC)")
		return nil
	}
	n, err := c.apiFor(s).Recover(r.Context(), id, since, until)
	if err != nil {
		return err
	}
	c.render(w, http.StatusOK, "recovered", &view{Title: "Recovery queued", Session: s,
		Data: map[string]any{"Count": n, "ReceiverID": id, "Operator": s.Operator()}})
	return nil
}
