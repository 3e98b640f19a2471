package query

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestListReceivers pages through every receiver, oldest first, active or
// not, without secrets.
func TestListReceivers(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	rs := []testReceiver{a.receiver(), a.receiver(), a.receiver()}
	a.must(http.StatusOK, "PATCH", "/v1/receivers/"+rs[1].ID.String(), testAdminToken, map[string]any{"active": false}, nil)
	type page struct {
		Data []struct {
			ID     uuid.UUID `json:"id"`
			Active bool      `json:"active"`
		} `json:"data"`
		NextCursor *string `json:"next_cursor"`
		HasMore    bool    `json:"has_more"`
	}
	var got []uuid.UUID
	var active []bool
	path, pages := "/v1/receivers?limit=2", 0
	for {
		code, body := a.do("GET", path, testAdminToken, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		if strings.Contains(string(body), "whsec_") || strings.Contains(string(body), "nfy_") {
			t.Fatalf("a receiver listing shows a secret: %s", body)
		}
		var p page
		a.must(http.StatusOK, "GET", path, testAdminToken, nil, &p)
		pages++
		for _, r := range p.Data {
			got, active = append(got, r.ID), append(active, r.Active)
		}
		if !p.HasMore {
			if p.NextCursor != nil {
				t.Fatalf("last page has a cursor")
			}
			break
		}
		path = "/v1/receivers?limit=2&cursor=" + *p.NextCursor
	}
	if pages != 2 || fmt.Sprint(got) != fmt.Sprint([]uuid.UUID{rs[0].ID, rs[1].ID, rs[2].ID}) || fmt.Sprint(active) != "[true false true]" {
		t.Fatalf("%d pages, receivers %v active %v; want 2 pages of %v, the second deactivated", pages, got, active, rs)
	}
	for _, q := range []struct{ query, field string }{{"limit=0", "limit"}, {"limit=501", "limit"}, {"active=true", "active"}, {"cursor=abc", "cursor"}} {
		code, body := a.do("GET", "/v1/receivers?"+q.query, testAdminToken, nil)
		if e := apiErr(t, body); code/100 != 4 || e.Field != q.field {
			t.Errorf("%s: %d %+v, want a 4xx naming %s", q.query, code, e, q.field)
		}
	}
}

// TestDateForms: every time the API reads takes a date (midnight UTC) as
// well as RFC 3339, the forms notifyctl takes.
func TestDateForms(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	day := time.Now().UTC().Truncate(24 * time.Hour)
	before, after := a.ingest(r, "before", "e"), a.ingest(r, "after", "e")
	a.exec(`UPDATE notifications SET created_at = $2 WHERE id = $1`, before, day.Add(-time.Hour))
	a.exec(`UPDATE notifications SET created_at = $2 WHERE id = $1`, after, day.Add(time.Hour))
	date := day.Format(time.DateOnly)
	for _, q := range []struct {
		query string
		want  uuid.UUID
	}{{"created_after=" + date, after}, {"created_before=" + date, before}} {
		var p testPage
		a.must(http.StatusOK, "GET", "/v1/notifications?"+q.query, r.APIKey, nil, &p)
		if len(p.Data) != 1 || p.Data[0].ID != q.want {
			t.Errorf("%s: %v, want [%s]", q.query, ids(p.Data), q.want)
		}
	}
	a.must(http.StatusAccepted, "POST", "/v1/receivers/"+r.ID.String()+"/recover", r.APIKey,
		map[string]string{"since": day.AddDate(0, 0, -1).Format(time.DateOnly), "until": date}, nil)
	a.must(http.StatusOK, "GET", "/v1/audit-events?since="+date+"&until="+day.AddDate(0, 0, 1).Format(time.DateOnly), testAdminToken, nil, nil)
	code, body := a.do("POST", "/v1/receivers/"+r.ID.String()+"/recover", r.APIKey, map[string]string{"since": "yesterday"})
	if e := apiErr(t, body); code != http.StatusUnprocessableEntity || e.Field != "since" || !strings.Contains(e.Message, "2006-01-02 (midnight UTC)") {
		t.Errorf("recover since=yesterday: %d %+v", code, e)
	}
}
