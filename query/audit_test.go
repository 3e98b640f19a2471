package query

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/store"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// auditAPI is the test API with its log kept.
func auditAPI(t *testing.T) (*testAPI, *lockedBuffer) {
	a := newTestAPI(t)
	logs := &lockedBuffer{}
	srv := New(a.store, a.rdb, a.queue, Config{
		AdminToken: testAdminToken, ProducerTokens: []string{testProducerToken},
		Targets: netguard.Policy{AllowPrivate: true},
		Logger:  slog.New(slog.NewTextHandler(io.MultiWriter(logs), nil)),
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c := *a
	c.api, c.srv = apitest.NewClient(t, hs.URL), srv
	return &c, logs
}

type auditList struct {
	Data       []store.AuditEvent
	NextCursor *string `json:"next_cursor"`
	HasMore    bool    `json:"has_more"`
}

// TestAuditRecordsMutatingRequests performs each kind of mutating request,
// allowed and refused, as each principal, and reads the trail back: one
// event each, with principal, route, target and status; reads and ingest
// leave none; no token or secret appears in the trail or the log.
func TestAuditRecordsMutatingRequests(t *testing.T) {
	t.Parallel()
	a, logs := auditAPI(t)
	r := a.receiver()
	n := a.ingest(r, "order-1", "trade.paid")
	a.must(http.StatusOK, "GET", "/v1/receivers/"+r.ID.String(), testAdminToken, nil, nil)
	var rotated struct {
		SigningSecret string `json:"signing_secret"`
	}
	a.must(http.StatusOK, "POST", "/v1/receivers/"+r.ID.String()+"/rotate-secret", testAdminToken, nil, &rotated)
	a.must(http.StatusOK, "PATCH", "/v1/receivers/"+r.ID.String(), testAdminToken, map[string]any{"name": "renamed"}, nil)
	a.must(http.StatusForbidden, "PATCH", "/v1/receivers/"+r.ID.String(), r.APIKey, map[string]any{"name": "x"}, nil)
	a.must(http.StatusAccepted, "POST", "/v1/notifications/"+n.String()+"/redeliver", r.APIKey, nil, nil)
	a.must(http.StatusOK, "POST", "/v1/notifications/"+n.String()+"/cancel", testProducerToken, nil, nil)

	type want struct {
		kind, pid, method, route, target string
		status                           int
	}
	wants := []want{ // newest first
		{"producer", "static/0", "POST", "/v1/notifications/:id/cancel", n.String(), 200},
		{"receiver", r.ID.String(), "POST", "/v1/notifications/:id/redeliver", n.String(), 202},
		{"receiver", r.ID.String(), "PATCH", "/v1/receivers/:id", r.ID.String(), 403},
		{"admin", "", "PATCH", "/v1/receivers/:id", r.ID.String(), 200},
		{"admin", "", "POST", "/v1/receivers/:id/rotate-secret", r.ID.String(), 200},
		{"admin", "", "POST", "/v1/receivers", r.ID.String(), 201},
	}
	var page auditList
	a.must(http.StatusOK, "GET", "/v1/audit-events?limit=500", testAdminToken, nil, &page)
	if len(page.Data) != len(wants) || page.HasMore {
		t.Fatalf("%d events (has_more %v), want %d: %+v", len(page.Data), page.HasMore, len(wants), page.Data)
	}
	for i, w := range wants {
		e := page.Data[i]
		if e.PrincipalKind != w.kind || e.PrincipalID != w.pid || e.Method != w.method || e.Route != w.route ||
			e.TargetID == nil || *e.TargetID != w.target || e.Status != w.status || e.RemoteIP != "127.0.0.1" {
			t.Errorf("event %d: %+v (target %v), want %+v", i, e, e.TargetID, w)
		}
	}
	for _, secret := range []string{testAdminToken, testProducerToken, r.APIKey, rotated.SigningSecret, "whsec_"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds a secret (%.8s…)", secret)
		}
	}
	if got := strings.Count(logs.String(), "msg=audit "); got != len(wants) {
		t.Errorf("%d audit log lines, want %d:\n%s", got, len(wants), logs)
	}

	// Filters and paging: two pages of the admin's three events.
	var p1, p2 auditList
	a.must(http.StatusOK, "GET", "/v1/audit-events?principal_kind=admin&limit=2", testAdminToken, nil, &p1)
	if len(p1.Data) != 2 || !p1.HasMore || p1.NextCursor == nil {
		t.Fatalf("first page %+v", p1)
	}
	a.must(http.StatusOK, "GET", "/v1/audit-events?principal_kind=admin&limit=2&cursor="+*p1.NextCursor, testAdminToken, nil, &p2)
	if len(p2.Data) != 1 || p2.HasMore || p2.Data[0].Route != "/v1/receivers" {
		t.Fatalf("second page %+v", p2)
	}
	a.must(http.StatusOK, "GET", "/v1/audit-events?target_id="+n.String(), testAdminToken, nil, &page)
	if len(page.Data) != 2 {
		t.Fatalf("events on the notification: %+v", page.Data)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	a.must(http.StatusOK, "GET", "/v1/audit-events?since="+future, testAdminToken, nil, &page)
	if len(page.Data) != 0 {
		t.Fatalf("events since %s: %+v", future, page.Data)
	}
	for _, bad := range []string{"?limit=0", "?limit=501", "?since=yesterday", "?cursor=xyz", "?principal=admin"} {
		if code, body := a.do("GET", "/v1/audit-events"+bad, testAdminToken, nil); code < 400 || code >= 500 {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

// TestAuditWriteFailureIsLogged: when the audit row cannot be written (the
// table is gone, standing in for Postgres refusing it), the request is still
// answered and the event is logged at Error with every field.
func TestAuditWriteFailureIsLogged(t *testing.T) {
	t.Parallel()
	a, logs := auditAPI(t)
	r := a.receiver()
	a.exec(`DROP TABLE audit_events`)
	a.must(http.StatusOK, "PATCH", "/v1/receivers/"+r.ID.String(), testAdminToken, map[string]any{"name": "renamed"}, nil)
	out := logs.String()
	if !strings.Contains(out, "level=ERROR msg=\"audit event not stored\"") || !strings.Contains(out, "target_id="+r.ID.String()) ||
		!strings.Contains(out, "route=/v1/receivers/:id") || !strings.Contains(out, "status=200") {
		t.Fatalf("no Error log of the lost audit event:\n%s", out)
	}
}
