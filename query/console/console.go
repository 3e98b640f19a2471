// Package console is notifyd's web console: server-rendered pages for
// operators (logged in with the admin token) and a portal for receivers
// (logged in with one of their API keys), under /console/ on the API port.
//
// Pages are html/template with their templates, stylesheet and script
// embedded; they read without JavaScript. A session is a sealed cookie
// (session.go); every change is a POST carrying the session's CSRF token.
// Notifications and receivers are read and changed through the query API,
// in process, with the session's credential (inprocess.go), so a receiver's
// portal is scoped exactly as its API key is. The operator's overview,
// receiver health and dead-letter pages read the store, Redis and the Asynq
// inspector directly, for operator sessions only.
package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/query/client"
)

//go:embed templates static
var assets embed.FS

// Config is what the console needs.
type Config struct {
	// API is the query API's handler, called in process.
	API   http.Handler
	Store *store.Store
	Redis redis.UniversalClient
	// AdminToken logs operators in and keys the session cookies.
	AdminToken string
	Logger     *slog.Logger
	// Now is the clock (tests move it); default time.Now.
	Now func() time.Time
}

// Console serves /console/.
type Console struct {
	cfg      Config
	sessions *sessions
	http     *http.Client
	pages    *pages
	mux      *http.ServeMux
	admin    [32]byte
	inspect  *asynq.Inspector
	// overviewCache keeps the overview's figures (overview.go) and
	// healthCache the receivers' health over 24 h (receivers.go).
	overviewCache *figureCache[*overviewData]
	healthCache   *figureCache[map[uuid.UUID]store.ReceiverHealth]
}

// contentSecurityPolicy allows our own stylesheet, script and images only:
// no inline script or style, so a payload that slips past escaping still
// cannot run.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// New builds the console.
func New(cfg Config) *Console {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	sess, err := newSessions(cfg.AdminToken, cfg.Now)
	if err != nil {
		panic(err) // a 32-byte key always parses
	}
	c := &Console{cfg: cfg, sessions: sess, pages: loadPages(),
		http: &http.Client{Transport: inProcess{api: cfg.API}, Timeout: 30 * time.Second},
		mux:  http.NewServeMux(), admin: sha256.Sum256([]byte(cfg.AdminToken))}
	if cfg.Redis != nil {
		c.inspect = asynq.NewInspectorFromRedisClient(cfg.Redis)
	}
	c.overviewCache = newFigureCache("overview", c.computeOverview)
	c.healthCache = newFigureCache("receiver health", func(ctx context.Context) (map[uuid.UUID]store.ReceiverHealth, error) {
		return c.cfg.Store.ReceiversHealth(ctx, c.cfg.Now().Add(-healthWindow))
	})
	c.routes()
	return c
}

func (c *Console) routes() {
	static, _ := fs.Sub(assets, "static")
	c.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /console/login", c.loginPage)
	c.mux.HandleFunc("POST /console/login", c.login)
	c.mux.HandleFunc("POST /console/logout", c.authed(false, c.logout))
	c.mux.HandleFunc("GET /console/{$}", c.authed(false, c.home))

	c.mux.HandleFunc("GET /console/notifications", c.authed(false, c.searchNotifications))
	c.mux.HandleFunc("GET /console/notifications/{id}", c.authed(false, c.notificationDetail))
	c.mux.HandleFunc("POST /console/notifications/{id}/redeliver", c.authed(false, c.redeliver))
	c.mux.HandleFunc("POST /console/notifications/{id}/cancel", c.authed(true, c.cancel))

	c.mux.HandleFunc("GET /console/account", c.authed(false, c.account))
	c.mux.HandleFunc("POST /console/receivers/{id}/rotate-secret", c.authed(false, c.rotateSecret))
	c.mux.HandleFunc("POST /console/receivers/{id}/recover", c.authed(false, c.recoverFailed))

	c.mux.HandleFunc("GET /console/overview", c.authed(true, c.overview))
	c.mux.HandleFunc("GET /console/receivers", c.authed(true, c.listReceivers))
	c.mux.HandleFunc("GET /console/receivers/new", c.authed(true, c.newReceiverPage))
	c.mux.HandleFunc("POST /console/receivers", c.authed(true, c.createReceiver))
	c.mux.HandleFunc("GET /console/receivers/{id}", c.authed(true, c.receiverDetail))
	c.mux.HandleFunc("POST /console/receivers/{id}", c.authed(true, c.updateReceiver))
	c.mux.HandleFunc("POST /console/receivers/{id}/active", c.authed(true, c.setActive))
	c.mux.HandleFunc("GET /console/dead-letters", c.authed(true, c.deadLetters))
	c.mux.HandleFunc("POST /console/dead-letters/tasks/delete", c.authed(true, c.deleteTask))
	c.mux.HandleFunc("POST /console/dead-letters/recover", c.authed(true, c.recoverFromDeadLetters))
}

// ServeHTTP sets the security headers every answer carries, then routes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r.WithContext(withBrowser(r.Context(), r)))
}

// handler is a page or action of a logged-in session.
type handler func(w http.ResponseWriter, r *http.Request, s *session) error

// authed opens the session (or sends the browser to log in), refuses a POST
// without the session's CSRF token, keeps receivers off operator pages and
// turns the handler's error into an error page.
func (c *Console) authed(operatorOnly bool, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := c.sessions.open(r)
		if err == nil && s.Operator() && !c.isAdmin(s.Credential) {
			err = errNoSession // the admin token changed since the login
		}
		if err != nil {
			if r.Method != http.MethodGet {
				c.errorPage(w, r, nil, http.StatusUnauthorized, "Your session has ended: log in again.")
				return
			}
			http.Redirect(w, r, "/console/login", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost && !validCSRF(s.CSRF, r.PostFormValue("csrf")) {
			c.errorPage(w, r, s, http.StatusForbidden, "This form is missing its security token (CSRF). Reload the page and try again.")
			return
		}
		if operatorOnly && !s.Operator() {
			c.errorPage(w, r, s, http.StatusNotFound, "Not found.")
			return
		}
		if err := h(w, r, s); err != nil {
			c.fail(w, r, s, err)
		}
	}
}

func (c *Console) isAdmin(token string) bool {
	if c.cfg.AdminToken == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], c.admin[:]) == 1
}

// fail answers an error: the API's refusals as what they mean, anything
// else as a logged internal error without its detail.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *client.APIError
	switch {
	case errors.Is(err, client.ErrNotFound), errors.Is(err, store.ErrNotFound):
		c.errorPage(w, r, s, http.StatusNotFound, "Not found.")
	case errors.Is(err, client.ErrUnauthorized):
		// The key was revoked or its receiver deactivated.
		c.sessions.end(w, r)
		c.errorPage(w, r, nil, http.StatusUnauthorized, "Your credential is no longer accepted: log in again.")
	case errors.As(err, &ae) && ae.StatusCode < 500:
		c.errorPage(w, r, s, ae.StatusCode, ae.Message)
	case errors.Is(err, context.Canceled):
	default:
		c.cfg.Logger.Error("console", "method", r.Method, "path", r.URL.Path, "err", err)
		c.errorPage(w, r, s, http.StatusInternalServerError, "Something went wrong; the server log has the detail.")
	}
}

func (c *Console) home(w http.ResponseWriter, r *http.Request, s *session) error {
	to := "/console/notifications"
	if s.Operator() {
		to = "/console/overview"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}
