package console

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/envelope"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/query/client"
)

// searchForm is the notification search, as the page's query string.
type searchForm struct {
	ID, Key, Receiver, Status, EventType, From, To, Cursor string
}

func readSearch(q url.Values) searchForm {
	get := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	return searchForm{ID: get("id"), Key: get("key"), Receiver: get("receiver"), Status: get("status"),
		EventType: get("event_type"), From: get("from"), To: get("to"), Cursor: get("cursor")}
}

// query is the form's query string without the cursor, for the next page.
func (f searchForm) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"key": f.Key, "receiver": f.Receiver, "status": f.Status,
		"event_type": f.EventType, "from": f.From, "to": f.To} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

type searchData struct {
	Form      searchForm
	Statuses  []string
	Page      *client.Page
	NextURL   string
	Error     string
	Receivers []receiverOption
}

type receiverOption struct{ ID, Name string }

// formTime reads a datetime-local field (UTC) or an RFC 3339 time.
func formTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02T15:04", v)
}

// searchNotifications lists notifications through the API (a receiver's
// session sees only its own), or opens one by id.
func (c *Console) searchNotifications(w http.ResponseWriter, r *http.Request, s *session) error {
	f := readSearch(r.URL.Query())
	if f.ID != "" {
		http.Redirect(w, r, "/console/notifications/"+url.PathEscape(f.ID), http.StatusSeeOther)
		return nil
	}
	if s.Operator() && f.Key != "" && f.Receiver == "" {
		return c.searchKeyEverywhere(w, r, s, f)
	}
	d := &searchData{Form: f, Statuses: []string{client.StatusPending, client.StatusDelivered, client.StatusFailed, client.StatusCancelled}}
	if s.Operator() {
		d.Receivers = c.receiverOptions(r)
	}
	p := client.ListParams{Status: f.Status, EventType: f.EventType, IdempotencyKey: f.Key, Cursor: f.Cursor,
		ReceiverID: f.Receiver, Limit: 50, Order: client.Descending}
	var err error
	if p.CreatedAfter, err = formTime(f.From); err != nil {
		d.Error = "from: not a time (YYYY-MM-DDTHH:MM, UTC)"
	}
	if p.CreatedBefore, err = formTime(f.To); err != nil {
		d.Error = "to: not a time (YYYY-MM-DDTHH:MM, UTC)"
	}
	status := http.StatusOK
	if d.Error == "" {
		d.Page, err = c.apiFor(s).List(r.Context(), p)
		var ae *client.APIError
		switch {
		case asAPIError(err, &ae) && ae.StatusCode == http.StatusUnprocessableEntity:
			d.Error, status = ae.Message, ae.StatusCode
		case err != nil:
			return err
		}
	}
	if d.Page != nil && d.Page.NextCursor != "" {
		q := f.query()
		q.Set("cursor", d.Page.NextCursor)
		d.NextURL = "/console/notifications?" + q.Encode()
	}
	c.render(w, status, "notifications", &view{Title: "Notifications", Session: s, Nav: "notifications", Data: d})
	return nil
}

type detailData struct {
	N        *client.Notification
	Envelope string
	Flash    string
}

// notificationDetail shows one notification, its envelope and its attempts
// (newest first), through the API: another receiver's id is "not found".
func (c *Console) notificationDetail(w http.ResponseWriter, r *http.Request, s *session) error {
	n, err := c.apiFor(s).Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	// The body as a redelivery sends it, rebuilt from the record.
	env, _ := envelope.Envelope{ID: n.ID, Type: n.EventType, ReceiverID: n.ReceiverID,
		IdempotencyKey: n.IdempotencyKey, CreatedAt: n.CreatedAt, Data: n.Payload}.Encode()
	attempts := n.DeliveryAttempts
	for i, j := 0, len(attempts)-1; i < j; i, j = i+1, j-1 {
		attempts[i], attempts[j] = attempts[j], attempts[i]
	}
	d := &detailData{N: n, Envelope: prettyJSON(env), Flash: flashes[r.URL.Query().Get("done")]}
	c.render(w, http.StatusOK, "notification", &view{Title: "Notification " + n.ID, Session: s, Nav: "notifications", Data: d})
	return nil
}

// flashes are the messages an action's redirect can show: chosen by code,
// so a link cannot put words on the page.
var flashes = map[string]string{
	"redelivered": "Redelivery queued: its attempt appears below once made (reload).",
	"cancelled":   "Cancelled: no further attempts will be made.",
	"recovered":   "Recovery queued for the failed notifications in the window.",
	"saved":       "Saved.",
}

func (c *Console) redeliver(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if _, err := c.apiFor(s).Redeliver(r.Context(), id); err != nil {
		return err
	}
	http.Redirect(w, r, "/console/notifications/"+url.PathEscape(id)+"?done=redelivered", http.StatusSeeOther)
	return nil
}

func (c *Console) cancel(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if _, err := c.apiFor(s).Cancel(r.Context(), id); err != nil {
		return err
	}
	http.Redirect(w, r, "/console/notifications/"+url.PathEscape(id)+"?done=cancelled", http.StatusSeeOther)
	return nil
}

// receiverOptions lists receivers for the operator's search form.
func (c *Console) receiverOptions(r *http.Request) []receiverOption {
	names, err := c.cfg.Store.ReceiverNames(r.Context())
	if err != nil {
		c.cfg.Logger.Warn("console: receivers for search", "err", err)
		return nil
	}
	out := make([]receiverOption, len(names))
	for i, n := range names {
		out[i] = receiverOption{ID: n.ID.String(), Name: n.Name}
	}
	return out
}

func asAPIError(err error, target **client.APIError) bool { return errors.As(err, target) }

// searchKeyEverywhere finds an idempotency key among every receiver's
// notifications, for an operator who does not name the receiver: a
// notification's id derives from (receiver, key), so that is one look-up of
// as many ids as there are receivers. One match opens it.
func (c *Console) searchKeyEverywhere(w http.ResponseWriter, r *http.Request, s *session, f searchForm) error {
	names, err := c.cfg.Store.ReceiverNames(r.Context())
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, len(names))
	for i, n := range names {
		ids[i] = tasks.NotificationID(n.ID, f.Key)
	}
	found, err := c.cfg.Store.NotificationReceivers(r.Context(), ids)
	if err != nil {
		return err
	}
	d := &searchData{Form: f, Statuses: []string{client.StatusPending, client.StatusDelivered, client.StatusFailed, client.StatusCancelled},
		Receivers: c.receiverOptions(r), Page: &client.Page{}}
	for _, id := range ids {
		if _, ok := found[id]; !ok {
			continue
		}
		if len(found) == 1 {
			http.Redirect(w, r, "/console/notifications/"+id.String(), http.StatusSeeOther)
			return nil
		}
		n, err := c.apiFor(s).Get(r.Context(), id.String())
		if err != nil {
			return err
		}
		d.Page.Data = append(d.Page.Data, n)
	}
	c.render(w, http.StatusOK, "notifications", &view{Title: "Notifications", Session: s, Nav: "notifications", Data: d})
	return nil
}
