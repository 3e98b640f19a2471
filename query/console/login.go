package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/query/client"
)

type loginData struct {
	Token string
	Error string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, err := c.sessions.open(r); err == nil {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "login", &view{Title: "Log in", Data: loginData{Token: c.sessions.loginToken(w, r)}})
}

// login accepts the admin token (an operator session) or a receiver's API
// key (its portal). The key is checked by the same look-up the API
// authenticates with; the session then calls the API with it.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	want, ok := c.sessions.openLogin(r)
	if !ok || !validCSRF(want, r.PostFormValue("csrf")) {
		c.errorPage(w, r, nil, http.StatusForbidden, "This form is missing its security token (CSRF). Reload the login page and try again.")
		return
	}
	cred := strings.TrimSpace(r.PostFormValue("token"))
	s, msg, err := c.authenticate(r, cred)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	if s == nil {
		c.cfg.Logger.Info("console: login refused", "remote", r.RemoteAddr)
		c.render(w, http.StatusUnauthorized, "login", &view{Title: "Log in", Data: loginData{Token: want, Error: msg}})
		return
	}
	if err := c.sessions.start(w, r, s); err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.cfg.Logger.Info("console: login", "role", s.Role, "receiver_id", s.ReceiverID, "remote", r.RemoteAddr)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ *session) error {
	c.sessions.end(w, r)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
	return nil
}

// authenticate asks the API first, so a login is refused, counted and rate
// limited like any API call with a bad token; then it tells an operator
// from a receiver. A nil session comes with the reason for the refusal.
func (c *Console) authenticate(r *http.Request, cred string) (*session, string, error) {
	refused := "That is neither the admin token nor an active API key."
	if cred == "" {
		return nil, refused, nil
	}
	_, err := c.apiFor(&session{Credential: cred}).List(r.Context(), client.ListParams{Limit: 1})
	var ae *client.APIError
	switch {
	case err == nil:
	case errors.Is(err, client.ErrUnauthorized):
		return nil, refused, nil
	case errors.Is(err, client.ErrForbidden):
		return nil, "Producer tokens cannot log in: use the admin token or a receiver's API key.", nil
	case errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests:
		return nil, "Too many failed attempts: wait a minute and try again.", nil
	default:
		return nil, "", err
	}
	if c.isAdmin(cred) {
		return &session{Role: roleOperator, Credential: cred}, "", nil
	}
	k, err := c.cfg.Store.ReceiverByAPIKey(r.Context(), store.HashAPIKey(cred))
	if errors.Is(err, store.ErrNotFound) || err == nil && !k.Active {
		return nil, refused, nil
	}
	if err != nil {
		return nil, "", err
	}
	return &session{Role: roleReceiver, Credential: cred, ReceiverID: k.ReceiverID.String()}, "", nil
}
