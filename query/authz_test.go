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
	// Producer records scoped to one receiver each: the right and the
	// wrong one for B's notifications.
	prodA, prodB := a.producer([]uuid.UUID{ra.ID}), a.producer([]uuid.UUID{rb.ID})
	type route struct {
		name   string
		method string
		// path: n is a fresh pending notification of B with key.
		path func(a *testAPI, n uuid.UUID, key string) string
		body func(n uuid.UUID, key string) any
	}
	fixed := func(p string) func(*testAPI, uuid.UUID, string) string {
		return func(*testAPI, uuid.UUID, string) string { return p }
	}
	onB := func(suffix string) func(*testAPI, uuid.UUID, string) string {
		return fixed("/v1/receivers/" + rb.ID.String() + suffix)
	}
	routes := []route{
		{"get", "GET", func(_ *testAPI, n uuid.UUID, _ string) string { return "/v1/notifications/" + n.String() }, nil},
		{"attempts", "GET", func(_ *testAPI, n uuid.UUID, _ string) string { return "/v1/notifications/" + n.String() + "/attempts" }, nil},
		{"list of B", "GET", fixed("/v1/notifications?receiver_id=" + rb.ID.String()), nil},
		{"by-key", "GET", func(_ *testAPI, _ uuid.UUID, key string) string {
			return "/v1/notifications/by-key/" + key + "?receiver_id=" + rb.ID.String()
		}, nil},
		{"redeliver", "POST", func(_ *testAPI, n uuid.UUID, _ string) string {
			return "/v1/notifications/" + n.String() + "/redeliver"
		}, nil},
		{"recover", "POST", onB("/recover"), func(uuid.UUID, string) any { return since }},
		{"rotate secret of B", "POST", onB("/rotate-secret"), nil},
		{"cancel", "POST", func(_ *testAPI, n uuid.UUID, _ string) string { return "/v1/notifications/" + n.String() + "/cancel" }, nil},
		{"ingest for B", "POST", fixed("/v1/notifications"), func(_ uuid.UUID, key string) any {
			return map[string]any{"receiver_id": rb.ID, "event_type": "trade.paid", "idempotency_key": key + "-2", "payload": map[string]any{}}
		}},
		{"recorded", "POST", fixed("/v1/notifications/recorded"), func(n uuid.UUID, _ string) any {
			return map[string]any{"ids": []uuid.UUID{n}}
		}},
		{"create key of B", "POST", func(a *testAPI, _ uuid.UUID, _ string) string {
			a.t.Cleanup(func() { a.revokeKeysBut(rb) })
			return "/v1/receivers/" + rb.ID.String() + "/api-keys"
		}, func(uuid.UUID, string) any { return map[string]any{"name": "rotation"} }},
		{"list keys of B", "GET", onB("/api-keys"), nil},
		{"revoke key of B", "DELETE", func(a *testAPI, _ uuid.UUID, _ string) string {
			var k struct{ ID string }
			a.must(http.StatusCreated, "POST", "/v1/receivers/"+rb.ID.String()+"/api-keys", testAdminToken, map[string]any{"name": "doomed"}, &k)
			path := "/v1/receivers/" + rb.ID.String() + "/api-keys/" + k.ID
			// B's keys stay under the bound whoever was refused.
			a.t.Cleanup(func() { a.do("DELETE", path, testAdminToken, nil) })
			return path
		}, nil},
		{"create producer", "POST", fixed("/v1/producers"), func(uuid.UUID, string) any {
			return map[string]any{"name": "billing", "receivers": []uuid.UUID{rb.ID}}
		}},
		{"list producers", "GET", fixed("/v1/producers"), nil},
		{"list receivers", "GET", fixed("/v1/receivers"), nil},
		{"delete producer", "DELETE", func(a *testAPI, _ uuid.UUID, _ string) string {
			return "/v1/producers/" + a.producerRecord([]uuid.UUID{rb.ID}).ID.String()
		}, nil},
		{"audit events", "GET", fixed("/v1/audit-events?target_id=" + rb.ID.String()), nil},
	}
	callers := []struct {
		name  string
		token string
	}{
		{"no token", ""},
		{"bad token", "not-a-token"},
		{"bad api key", "nfy_" + uuid.NewString()},
		{"made-up api key", newAPIKey()},
		{"made-up producer token", newProducerToken()},
		{"receiver A", ra.APIKey},
		{"receiver B", rb.APIKey},
		{"admin", testAdminToken},
		{"producer", testProducerToken},
		{"producer of A", prodA},
		{"producer of B", prodB},
	}
	// Every kind of producer is refused where producers are.
	noProducer := func(m map[string]int) map[string]int {
		for _, p := range []string{"producer", "producer of A", "producer of B"} {
			if _, ok := m[p]; !ok {
				m[p] = 403
			}
		}
		return m
	}
	// Admin-only routes: everyone else who authenticates gets 403.
	adminOnly := func(status int) map[string]int {
		return noProducer(map[string]int{"receiver A": 403, "receiver B": 403, "admin": status})
	}
	// want[route][caller]
	want := map[string]map[string]int{
		"get":       noProducer(map[string]int{"receiver A": 404, "receiver B": 200, "admin": 200}),
		"attempts":  noProducer(map[string]int{"receiver A": 404, "receiver B": 200, "admin": 200}),
		"list of B": noProducer(map[string]int{"receiver A": 404, "receiver B": 200, "admin": 200}),
		"by-key":    noProducer(map[string]int{"receiver A": 404, "receiver B": 200, "admin": 200}),
		"redeliver": noProducer(map[string]int{"receiver A": 404, "receiver B": 202, "admin": 202}),
		"recover":   noProducer(map[string]int{"receiver A": 404, "receiver B": 202, "admin": 202}),
		// A receiver rotates its own secret (the console's portal does).
		"rotate secret of B": noProducer(map[string]int{"receiver A": 404, "receiver B": 200, "admin": 200}),
		"cancel": {"receiver A": 403, "receiver B": 403, "admin": 200, "producer": 200,
			"producer of A": 403, "producer of B": 200},
		"ingest for B": {"receiver A": 403, "receiver B": 403, "admin": 202, "producer": 202,
			"producer of A": 403, "producer of B": 202},
		"recorded": {"receiver A": 403, "receiver B": 403, "admin": 200, "producer": 200,
			"producer of A": 200, "producer of B": 200},
		"create key of B": adminOnly(201),
		"list keys of B":  adminOnly(200),
		"revoke key of B": adminOnly(204),
		"create producer": adminOnly(201),
		"list producers":  adminOnly(200),
		"list receivers":  adminOnly(200),
		"delete producer": adminOnly(204),
		// The audit trail is the admin's alone, even for a receiver's own id.
		"audit events": adminOnly(200),
	}
	// Routes that name a notification: a missing one must look like B's.
	namesNotification := map[string]bool{"get": true, "attempts": true, "by-key": true, "redeliver": true, "cancel": true}
	missing := map[string]int{} // route → status for a notification id that does not exist, as A
	for _, rt := range routes {
		for _, c := range callers {
			t.Run(rt.name+"/"+c.name, func(t *testing.T) {
				a := a.with(t)
				key := uuid.NewString()
				n := a.ingest(rb, key, "trade.paid")
				path := rt.path(a, n, key)
				var body any
				if rt.body != nil {
					body = rt.body(n, key)
				}
				expect, ok := want[rt.name][c.name]
				if !ok {
					expect = http.StatusUnauthorized
				}
				code, raw := a.do(rt.method, path, c.token, body)
				if code != expect {
					t.Fatalf("%s %s as %s: %d %s, want %d", rt.method, path, c.name, code, raw, expect)
				}
				if code >= 400 {
					e := apiErr(t, raw)
					if code == 404 {
						// Indistinguishable from a notification that does not exist.
						if e.Code != "not_found" || e.Message != errNotFound.Message {
							t.Fatalf("404 body %+v", e)
						}
					}
					if code == 403 && (c.name == "producer of A" || c.name == "producer of B") &&
						(rt.name == "cancel" || rt.name == "ingest for B") && e.Field != "receiver_id" {
						t.Fatalf("a producer out of its scope: %+v, want the field receiver_id", e)
					}
				}
			})
		}
		if namesNotification[rt.name] {
			// The same route for a notification that does not exist, as A.
			var body any
			if rt.body != nil {
				body = rt.body(uuid.New(), "no-such-key")
			}
			code, _ := a.do(rt.method, rt.path(a, uuid.New(), "no-such-key"), ra.APIKey, body)
			missing[rt.name] = code
		}
	}
	for name, code := range missing {
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
