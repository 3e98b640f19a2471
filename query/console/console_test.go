package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/testenv"
)

// TestSessionCookieAndHeaders logs in and out as the operator and checks
// what protects the session: the cookie's attributes, Secure behind a TLS
// proxy, the security headers, and that a tampered or forged cookie is no
// session.
func TestSessionCookieAndHeaders(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	b := newBrowser(t, s)

	resp, _ := b.get("/console/overview")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Fatalf("logged out: %d to %q, want 303 to the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if csp == "" || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}

	for k, v := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
		"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	for token, want := range map[string]string{"wrong": "neither the admin token", apitest.ProducerToken: "Producer tokens cannot log in"} {
		resp, page := b.post("/console/login", url.Values{"csrf": {b.csrf("/console/login")}, "token": {token}})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, want) {
			t.Fatalf("log in with %q: %d\n%s", token, resp.StatusCode, page)
		}
	}
	resp, _ = b.post("/console/login", url.Values{"csrf": {b.csrf("/console/login")}, "token": {apitest.AdminToken}})
	c := cookieNamed(resp, "notifyd_console")
	if resp.StatusCode != http.StatusSeeOther || c == nil {
		t.Fatalf("login: %d, cookie %v", resp.StatusCode, c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.MaxAge != 12*3600 || c.Path != "/console/" {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP, 12 h, /console/", c)
	}
	if strings.Contains(c.Value, apitest.AdminToken) {
		t.Error("the session cookie shows the admin token")
	}
	resp, page := b.get("/console/overview")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Attempts per minute") {
		t.Fatalf("overview: %d\n%s", resp.StatusCode, page)
	}

	// The value flipped in its last character, or a cookie we never sealed.
	for name, v := range map[string]string{
		"tampered": c.Value[:len(c.Value)-2] + flip(c.Value[len(c.Value)-2]) + c.Value[len(c.Value)-1:],
		"plain":    `{"r":"operator","c":"` + apitest.AdminToken + `","x":"x","e":9999999999}`,
		"forged":   "nfysec1:console:" + strings.Repeat("A", 80),
	} {
		b2 := newBrowser(t, s)
		b2.header.Set("Cookie", "notifyd_console="+v)
		if resp, _ := b2.get("/console/overview"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("%s cookie: %d, want 303 to the login", name, resp.StatusCode)
		}
	}

	// Behind a TLS-terminating proxy the cookie is Secure.
	b3 := newBrowser(t, s)
	b3.header.Set("X-Forwarded-Proto", "https")
	resp, _ = b3.post("/console/login", url.Values{"csrf": {b3.csrf("/console/login")}, "token": {apitest.AdminToken}})
	if c := cookieNamed(resp, "notifyd_console"); c == nil || !c.Secure {
		t.Errorf("behind https: cookie %+v, want Secure", c)
	}

	resp, _ = b.post("/console/logout", url.Values{"csrf": {b.csrf("/console/overview")}})
	if c := cookieNamed(resp, "notifyd_console"); resp.StatusCode != http.StatusSeeOther || c == nil || c.MaxAge >= 0 {
		t.Fatalf("logout: %d, cookie %+v", resp.StatusCode, c)
	}
	if resp, _ := b.get("/console/overview"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout: %d, want 303 to the login", resp.StatusCode)
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestFormsWithoutCSRFAreRefused posts each kind of change without the
// session's token (and with another session's) and checks nothing changed.
func TestFormsWithoutCSRFAreRefused(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, http.StatusOK)
	r := s.CreateReceiver(cb.URL, nil)
	id := send(t, s, r.ID, "order-1", map[string]any{"amount": 1})
	s.WaitStatus(60*time.Second, "delivered", id)

	b, other := newBrowser(t, s), newBrowser(t, s)
	b.login(apitest.AdminToken)
	other.login(apitest.AdminToken)
	foreign := other.csrf("/console/overview")
	for _, tc := range []struct{ path, token string }{
		{"/console/notifications/" + id + "/redeliver", ""},
		{"/console/notifications/" + id + "/redeliver", foreign},
		{"/console/receivers/" + r.ID + "/active", ""},
		{"/console/receivers", ""},
		{"/console/login", ""},
	} {
		form := url.Values{"active": {"false"}, "name": {"x"}, "callback_url": {cb.URL}, "token": {apitest.AdminToken}}
		if tc.token != "" {
			form.Set("csrf", tc.token)
		}
		if resp, page := b.post(tc.path, form); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "CSRF") {
			t.Errorf("POST %s with csrf %q: %d, want 403 naming CSRF", tc.path, tc.token, resp.StatusCode)
		}
	}
	time.Sleep(500 * time.Millisecond) // a redelivery that slipped through would be attempted by now
	if n := attempts(t, s, id); n != 1 {
		t.Errorf("%d attempts, want 1: a refused redelivery was made", n)
	}
	var rcv struct{ Active bool }
	s.Call(http.MethodGet, "/v1/receivers/"+r.ID, apitest.AdminToken, nil, http.StatusOK, &rcv)
	if !rcv.Active {
		t.Error("the receiver was deactivated by a form without its token")
	}
	// With the token the same redelivery goes through.
	resp, _ := b.post("/console/notifications/"+id+"/redeliver", url.Values{"csrf": {b.csrf("/console/notifications/" + id)}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("redeliver with token: %d", resp.StatusCode)
	}
	testenv.WaitFor(t, time.Minute, "the redelivery's attempt", func() bool { return attempts(t, s, id) == 2 })
}

// TestReceiverPortalIsScopedLikeTheAPI logs in with receiver A's API key:
// B's notification, B's receiver actions and the operator pages are "not
// found"; A's own are there, and A may rotate its own signing secret.
func TestReceiverPortalIsScopedLikeTheAPI(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, http.StatusOK)
	ra, rb := s.CreateReceiver(cb.URL, nil), s.CreateReceiver(cb.URL, nil)
	aID := send(t, s, ra.ID, "a-1", map[string]any{"n": 1})
	bID := send(t, s, rb.ID, "b-1", map[string]any{"n": 2})

	b := newBrowser(t, s)
	b.login(ra.APIKey)
	if resp, page := b.get("/console/notifications/" + aID); resp.StatusCode != http.StatusOK || !strings.Contains(page, "a-1") {
		t.Fatalf("own notification: %d\n%s", resp.StatusCode, page)
	}
	for _, p := range []string{"/console/notifications/" + bID, "/console/overview", "/console/receivers",
		"/console/receivers/" + rb.ID, "/console/dead-letters"} {
		if resp, page := b.get(p); resp.StatusCode != http.StatusNotFound || strings.Contains(page, "b-1") {
			t.Errorf("GET %s as A: %d, want 404", p, resp.StatusCode)
		}
	}
	if _, page := b.get("/console/notifications?receiver=" + rb.ID); strings.Contains(page, bID) {
		t.Error("A's listing with B's receiver id shows B's notification")
	}
	if _, page := b.get("/console/notifications"); !strings.Contains(page, aID) || strings.Contains(page, bID) {
		t.Errorf("A's listing: want A's notification only\n%s", page)
	}
	token := b.csrf("/console/account")
	for _, p := range []string{"/console/notifications/" + bID + "/redeliver", "/console/receivers/" + rb.ID + "/rotate-secret",
		"/console/notifications/" + aID + "/cancel"} {
		if resp, _ := b.post(p, url.Values{"csrf": {token}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s as A: %d, want 404", p, resp.StatusCode)
		}
	}
	resp, page := b.post("/console/receivers/"+ra.ID+"/rotate-secret", url.Values{"csrf": {token}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "whsec_") || strings.Contains(page, ra.SigningSecret) {
		t.Fatalf("rotate own secret: %d\n%s", resp.StatusCode, page)
	}
	// Revoking the key ends the session at its next request.
	var keys struct{ Data []struct{ ID string } }
	s.Call(http.MethodGet, "/v1/receivers/"+ra.ID+"/api-keys", apitest.AdminToken, nil, http.StatusOK, &keys)
	s.Call(http.MethodPost, "/v1/receivers/"+ra.ID+"/api-keys", apitest.AdminToken, map[string]any{"name": "next"}, http.StatusCreated, nil)
	for _, k := range keys.Data {
		s.Call(http.MethodDelete, "/v1/receivers/"+ra.ID+"/api-keys/"+k.ID, apitest.AdminToken, nil, http.StatusNoContent, nil)
	}
	if resp, _ := b.get("/console/notifications/" + aID); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after the key's revocation: %d, want 401", resp.StatusCode)
	}
}

// TestHostileContentIsEscaped sends a payload and gets an answer body that
// are HTML: both appear as text on the notification's page.
func TestHostileContentIsEscaped(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	evil := `<script>alert("x")</script><img src=x onerror=alert(1)>`
	cb := newBodyServer(t, http.StatusInternalServerError, evil)
	r := s.CreateReceiver(cb, nil)
	id := send(t, s, r.ID, `key-"><script>`, map[string]any{"note": evil})
	testenv.WaitFor(t, time.Minute, "the first attempt", func() bool { return attempts(t, s, id) >= 1 })

	b := newBrowser(t, s)
	b.login(apitest.AdminToken)
	for _, p := range []string{"/console/notifications/" + id, "/console/notifications?receiver=" + r.ID, "/console/receivers/" + r.ID} {
		resp, page := b.get(p)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		if strings.Contains(page, "<script>") || strings.Contains(page, "<img") {
			t.Errorf("GET %s: hostile HTML rendered as markup", p)
		}
	}
	_, page := b.get("/console/notifications/" + id)
	if !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)") && !strings.Contains(page, `&lt;script&gt;alert(\&#34;x\&#34;)`) {
		t.Errorf("the payload is not shown escaped:\n%s", page)
	}
	if !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("the response body is not shown escaped:\n%s", page)
	}
}

// TestOperatorFindsAKeyWithoutItsReceiver: an operator searching only an
// idempotency key lands on its notification, or sees every receiver's
// notification with that key.
func TestOperatorFindsAKeyWithoutItsReceiver(t *testing.T) {
	t.Parallel()
	s := notifydtest.Start(t)
	cb := apitest.NewCallbackServer(t, http.StatusOK)
	ra, rb := s.CreateReceiver(cb.URL, nil), s.CreateReceiver(cb.URL, nil)
	only := send(t, s, ra.ID, "order-1001", map[string]any{})
	both := []string{send(t, s, ra.ID, "order-7", map[string]any{}), send(t, s, rb.ID, "order-7", map[string]any{})}
	b := newBrowser(t, s)
	b.login(apitest.AdminToken)
	if resp, _ := b.get("/console/notifications?key=order-1001"); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/console/notifications/"+only {
		t.Errorf("one match: %d to %q, want its page", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page := b.get("/console/notifications?key=order-7")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, both[0]) || !strings.Contains(page, both[1]) {
		t.Errorf("two matches: %d\n%s", resp.StatusCode, page)
	}
	if _, page := b.get("/console/notifications?key=order-404"); !strings.Contains(page, "Nothing found") {
		t.Errorf("no match:\n%s", page)
	}
}
