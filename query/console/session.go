package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/notifyd/notifyd/internal/secretbox"
)

// Session cookies. The session is the whole state: sealed (AES-256-GCM, so
// signed and unreadable) with a key derived from the admin token, it needs
// no table and is valid on every API replica that shares the token. Changing
// the admin token ends every session.
const (
	sessionCookie = "notifyd_console"
	// preCookie carries the login form's CSRF token before a session exists.
	preCookie  = "notifyd_console_login"
	sessionTTL = 12 * time.Hour
	// sessionAAD binds sealed values to this use of the key.
	sessionAAD = "notifyd console session v1"
	preAAD     = "notifyd console login v1"
)

// Roles of a session.
const (
	roleOperator = "operator"
	roleReceiver = "receiver"
)

// session is what the cookie holds. Credential is the admin token or the
// receiver's API key: every API call of the session is made with it, so the
// API authorises (and scopes) the console's requests exactly as it does a
// client's, and a revoked key ends its sessions at once.
type session struct {
	Role       string `json:"r"`
	Credential string `json:"c"`
	ReceiverID string `json:"rid,omitempty"`
	CSRF       string `json:"x"`
	Expires    int64  `json:"e"`
}

func (s *session) Operator() bool { return s.Role == roleOperator }

// sessions seals and opens session cookies.
type sessions struct {
	box *secretbox.Keyring
	now func() time.Time
}

// newSessions derives the sealing key from secret (the admin token), or
// makes a random one when there is none: sessions then last as long as the
// process.
func newSessions(secret string, now func() time.Time) (*sessions, error) {
	var key []byte
	if secret != "" {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte("notifyd console session key"))
		key = m.Sum(nil)
	} else {
		key = make([]byte, 32)
		_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
	}
	box, err := secretbox.ParseKeys("console:" + base64.StdEncoding.EncodeToString(key))
	if err != nil {
		return nil, err
	}
	return &sessions{box: box, now: now}, nil
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secure reports whether the browser reached us over TLS, directly or
// through a proxy that says so: only then may a cookie be marked Secure
// (a Secure cookie over plain HTTP is never sent back).
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (m *sessions) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/console/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode}
}

// start issues a new session (a fresh CSRF token each login).
func (m *sessions) start(w http.ResponseWriter, r *http.Request, s *session) error {
	s.CSRF = randomToken()
	s.Expires = m.now().Add(sessionTTL).Unix()
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	sealed, err := m.box.Seal(string(raw), []byte(sessionAAD))
	if err != nil {
		return err
	}
	http.SetCookie(w, m.cookie(r, sessionCookie, sealed, int(sessionTTL/time.Second)))
	http.SetCookie(w, m.cookie(r, preCookie, "", -1))
	return nil
}

func (m *sessions) end(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, m.cookie(r, sessionCookie, "", -1))
}

var errNoSession = errors.New("console: no valid session")

// open returns the request's session: sealed by us, not expired.
func (m *sessions) open(r *http.Request) (*session, error) {
	c, err := r.Cookie(sessionCookie)
	// secretbox.Open passes unsealed text through (legacy plaintext), so a
	// forged plain cookie must be refused before it.
	if err != nil || !secretbox.IsSealed(c.Value) {
		return nil, errNoSession
	}
	raw, err := m.box.Open(c.Value, []byte(sessionAAD))
	if err != nil {
		return nil, errNoSession
	}
	var s session
	if json.Unmarshal([]byte(raw), &s) != nil || s.CSRF == "" || s.Credential == "" {
		return nil, errNoSession
	}
	if m.now().Unix() >= s.Expires {
		return nil, errNoSession
	}
	return &s, nil
}

// loginToken returns the login form's CSRF token, setting its cookie when
// missing: the cookie holds the token sealed, the form the token.
func (m *sessions) loginToken(w http.ResponseWriter, r *http.Request) string {
	if tok, ok := m.openLogin(r); ok {
		return tok
	}
	tok := randomToken()
	sealed, err := m.box.Seal(tok, []byte(preAAD))
	if err == nil {
		http.SetCookie(w, m.cookie(r, preCookie, sealed, int(time.Hour/time.Second)))
	}
	return tok
}

func (m *sessions) openLogin(r *http.Request) (string, bool) {
	c, err := r.Cookie(preCookie)
	if err != nil || !secretbox.IsSealed(c.Value) {
		return "", false
	}
	tok, err := m.box.Open(c.Value, []byte(preAAD))
	return tok, err == nil && tok != ""
}

// validCSRF compares a form's token with the expected one in constant time.
func validCSRF(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
