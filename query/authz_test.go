package query

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestAuthorizationMatrix calls every query route as every kind of caller on
// receiver B's notifications. Receiver A must get 404 wherever B's
// notification or id is named, exactly like for a missing one; bad and
// missing tokens get 401; producers may only cancel.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ra, rb := a.receiver(), a.receiver()
	aID := a.ingest(ra, "a-order", "trade.paid")

	since := map[string]string{"since": time.Now().Add(-time.Hour).Format(time.RFC3339)}
	type route struct {
		name   string
		method string
		path   func(n uuid.UUID, key string) string // n: a fresh pending notification of B with key
		body   any
	}
	routes := []route{
		{"get", "GET", func(n uuid.UUID, _ string) string { return "/v1/notifications/" + n.String() }, nil},
		{"attempts", "GET", func(n uuid.UUID, _ string) string { return "/v1/notifications/" + n.String() + "/attempts" }, nil},
		{"list of B", "GET", func(uuid.UUID, string) string { return "/v1/notifications?receiver_id=" + rb.ID.String() }, nil},
		{"by-key", "GET", func(_ uuid.UUID, key string) string {
			return "/v1/notifications/by-key/" + key + "?receiver_id=" + rb.ID.String()
		}, nil},
		{"redeliver", "POST", func(n uuid.UUID, _ string) string { return "/v1/notifications/" + n.String() + "/redeliver" }, nil},
		{"recover", "POST", func(uuid.UUID, string) string { return "/v1/receivers/" + rb.ID.String() + "/recover" }, since},
		{"cancel", "POST", func(n uuid.UUID, _ string) string { return "/v1/notifications/" + n.String() + "/cancel" }, nil},
		{"audit events", "GET", func(uuid.UUID, string) string { return "/v1/audit-events?target_id=" + rb.ID.String() }, nil},
	}
	callers := []struct {
		name  string
		token string
	}{
		{"no token", ""},
		{"bad token", "not-a-token"},
		{"bad api key", "nfy_" + uuid.NewString()},
		{"receiver A", ra.APIKey},
		{"receiver B", rb.APIKey},
		{"admin", testAdminToken},
		{"producer", testProducerToken},
	}
	// want[route][caller]
	want := map[string]map[string]int{
		"get":       {"receiver A": 404, "receiver B": 200, "admin": 200, "producer": 403},
		"attempts":  {"receiver A": 404, "receiver B": 200, "admin": 200, "producer": 403},
		"list of B": {"receiver A": 404, "receiver B": 200, "admin": 200, "producer": 403},
		"by-key":    {"receiver A": 404, "receiver B": 200, "admin": 200, "producer": 403},
		"redeliver": {"receiver A": 404, "receiver B": 202, "admin": 202, "producer": 403},
		"recover":   {"receiver A": 404, "receiver B": 202, "admin": 202, "producer": 403},
		"cancel":    {"receiver A": 403, "receiver B": 403, "admin": 200, "producer": 200},
		// The audit trail is the admin's alone, even for a receiver's own id.
		"audit events": {"receiver A": 403, "receiver B": 403, "admin": 200, "producer": 403},
	}
	missing := map[string]int{} // route → status for a notification id that does not exist, as A
	for _, rt := range routes {
		for _, c := range callers {
			t.Run(rt.name+"/"+c.name, func(t *testing.T) {
				a := a.with(t)
				key := uuid.NewString()
				path := rt.path(a.ingest(rb, key, "trade.paid"), key)
				expect, ok := want[rt.name][c.name]
				if !ok {
					expect = http.StatusUnauthorized
				}
				code, body := a.do(rt.method, path, c.token, rt.body)
				if code != expect {
					t.Fatalf("%s %s as %s: %d %s, want %d", rt.method, path, c.name, code, body, expect)
				}
				if code >= 400 {
					e := apiErr(t, body)
					if code == 404 {
						// Indistinguishable from a notification that does not exist.
						if e.Code != "not_found" || e.Message != errNotFound.Message {
							t.Fatalf("404 body %+v", e)
						}
					}
				}
			})
		}
		// The same route for a notification that does not exist, as A.
		code, _ := a.do(rt.method, rt.path(uuid.New(), "no-such-key"), ra.APIKey, rt.body)
		missing[rt.name] = code
	}
	for name, code := range missing {
		if name == "list of B" || name == "recover" || name == "audit events" {
			continue // these name B's receiver id, not a notification
		}
		if w := want[name]["receiver A"]; code != w {
			t.Errorf("%s on a missing notification as A: %d, want %d like B's", name, code, w)
		}
	}

	// A's own listing never shows B's notifications; B's shows only B's.
	var page testPage
	a.must(http.StatusOK, "GET", "/v1/notifications?limit=500", ra.APIKey, nil, &page)
	if len(page.Data) != 1 || page.Data[0].ID != aID {
		t.Fatalf("A's listing: %+v", ids(page.Data))
	}
	a.must(http.StatusOK, "GET", "/v1/notifications?limit=500", rb.APIKey, nil, &page)
	for _, n := range page.Data {
		if n.ReceiverID != rb.ID {
			t.Fatalf("B's listing holds %s of %s", n.ID, n.ReceiverID)
		}
	}
	// A deactivated receiver's key no longer works.
	a.must(http.StatusOK, "PATCH", "/v1/receivers/"+ra.ID.String(), testAdminToken, map[string]any{"active": false}, nil)
	code, body := a.do("GET", "/v1/notifications", ra.APIKey, nil)
	if code != http.StatusForbidden || apiErr(t, body).Code != "receiver_inactive" {
		t.Fatalf("deactivated receiver: %d %s", code, body)
	}
}
