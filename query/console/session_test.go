package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestSessionLifetime seals a session at a fixed time and opens it as the
// clock moves: valid up to 12 h, refused after, and refused under another
// admin token's key.
func TestSessionLifetime(t *testing.T) {
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m, err := newSessions("admin-token", clock)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := m.start(rec, httptest.NewRequest(http.MethodPost, "/console/login", nil), &session{Role: roleOperator, Credential: "admin-token"}); err != nil {
		t.Fatal(err)
	}
	var cookie *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie set")
	}
	req := httptest.NewRequest(http.MethodGet, "/console/", nil)
	req.AddCookie(cookie)
	otherKey, _ := newSessions("another-admin-token", clock)
	for _, tc := range []struct {
		name  string
		after time.Duration
		m     *sessions
		ok    bool
	}{
		{"fresh", 0, m, true},
		{"just before 12 h", sessionTTL - time.Second, m, true},
		{"at 12 h", sessionTTL, m, false},
		{"a day later", 24 * time.Hour, m, false},
		{"another admin token", 0, otherKey, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := now
			now = now.Add(tc.after)
			defer func() { now = saved }()
			s, err := tc.m.open(req)
			if (err == nil) != tc.ok {
				t.Fatalf("open: %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (s.Role != roleOperator || s.CSRF == "") {
				t.Errorf("session %+v", s)
			}
		})
	}
}
