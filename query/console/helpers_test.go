package console_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
)

// browser is a cookie-keeping HTTP client of one stack's console that does
// not follow redirects, so tests see each answer.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	// header is added to every request (e.g. X-Forwarded-Proto).
	header http.Header
}

func newBrowser(t *testing.T, s *notifydtest.Stack) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: s.URL, header: http.Header{}, hc: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, v := range b.header {
		req.Header[k] = v
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func (b *browser) get(path string) (*http.Response, string) { return b.do(http.MethodGet, path, nil) }

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	return b.do(http.MethodPost, path, form)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the form token on the page at path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	_, page := b.get(path)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("%s has no CSRF field:\n%s", path, page)
	}
	return m[1]
}

// login logs in with token and fails the test unless it is accepted.
func (b *browser) login(token string) {
	b.t.Helper()
	resp, page := b.post("/console/login", url.Values{"csrf": {b.csrf("/console/login")}, "token": {token}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login: %d\n%s", resp.StatusCode, page)
	}
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// send hands a notification to the API as the producer and returns its id.
func send(t *testing.T, s *notifydtest.Stack, receiverID, key string, payload any) string {
	t.Helper()
	var out struct{ ID string }
	s.Call(http.MethodPost, "/v1/notifications", apitest.ProducerToken, map[string]any{
		"receiver_id": receiverID, "event_type": "trade.paid", "idempotency_key": key, "payload": payload,
	}, http.StatusAccepted, &out)
	return out.ID
}

// attempts is how many attempts the API has recorded for notification id.
func attempts(t *testing.T, s *notifydtest.Stack, id string) int {
	t.Helper()
	var n struct {
		DeliveryAttempts []json.RawMessage `json:"delivery_attempts"`
	}
	s.Call(http.MethodGet, "/v1/notifications/"+id, apitest.AdminToken, nil, http.StatusOK, &n)
	return len(n.DeliveryAttempts)
}
