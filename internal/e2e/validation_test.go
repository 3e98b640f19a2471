package e2e

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/notifyd/notifyd/internal/netguard"
)

// apiErrorBody is the documented error shape.
type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

func TestBadInputGetsDocumented4xx(t *testing.T) {
	t.Parallel()
	s := newStack(t, withTargets(netguard.Policy{})) // production's default: no private targets
	r := s.receiver("https://merchant.example/cb", nil)
	valid := func() map[string]any {
		return map[string]any{"receiver_id": r.ID, "event_type": "trade.paid", "idempotency_key": "k", "payload": map[string]any{"a": 1}}
	}
	with := func(k string, v any) map[string]any { m := valid(); m[k] = v; return m }
	without := func(k string) map[string]any { m := valid(); delete(m, k); return m }
	cases := []struct {
		name   string
		method string
		path   string
		token  string
		body   any
		status int
		code   string
		field  string
	}{
		{"ingest without token", "POST", "/v1/notifications", "", valid(), 401, "unauthorized", ""},
		{"ingest with a wrong token", "POST", "/v1/notifications", "nope", valid(), 401, "unauthorized", ""},
		{"ingest with a receiver key", "POST", "/v1/notifications", r.APIKey, valid(), 403, "forbidden", ""},
		{"ingest malformed json", "POST", "/v1/notifications", producerToken, `{"receiver_id":`, 400, "invalid_json", ""},
		{"ingest two objects", "POST", "/v1/notifications", producerToken, `{} {}`, 400, "invalid_json", ""},
		{"ingest unknown field", "POST", "/v1/notifications", producerToken, with("colour", "red"), 422, "invalid_field", "colour"},
		{"ingest receiver id not a uuid", "POST", "/v1/notifications", producerToken, with("receiver_id", "x"), 422, "invalid_field", "receiver_id"},
		{"ingest unknown receiver", "POST", "/v1/notifications", producerToken, with("receiver_id", "5f0c2d3e-0000-4000-8000-000000000000"), 422, "invalid_field", "receiver_id"},
		{"ingest missing event type", "POST", "/v1/notifications", producerToken, without("event_type"), 422, "invalid_field", "event_type"},
		{"ingest long event type", "POST", "/v1/notifications", producerToken, with("event_type", strings.Repeat("e", 201)), 422, "invalid_field", "event_type"},
		{"ingest missing key", "POST", "/v1/notifications", producerToken, without("idempotency_key"), 422, "invalid_field", "idempotency_key"},
		{"ingest control characters in key", "POST", "/v1/notifications", producerToken, with("idempotency_key", "a\nb"), 422, "invalid_field", "idempotency_key"},
		{"ingest missing payload", "POST", "/v1/notifications", producerToken, without("payload"), 422, "invalid_field", "payload"},
		{"ingest wrong type", "POST", "/v1/notifications", producerToken, with("event_type", 7), 422, "invalid_field", "event_type"},
		{"ingest relative callback", "POST", "/v1/notifications", producerToken, with("callback_url", "/cb"), 422, "invalid_field", "callback_url"},
		{"ingest private callback", "POST", "/v1/notifications", producerToken, with("callback_url", "http://10.0.0.8/cb"), 422, "invalid_field", "callback_url"},
		{"ingest metadata callback", "POST", "/v1/notifications", producerToken, with("callback_url", "http://169.254.169.254/latest"), 422, "invalid_field", "callback_url"},
		{"ingest payload too big", "POST", "/v1/notifications", producerToken, with("payload", strings.Repeat("x", 300<<10)), 413, "too_large", "payload"},
		{"ingest wrong content type", "POST", "/v1/notifications", producerToken, nil, 415, "unsupported_media_type", ""},
		{"receiver without name", "POST", "/v1/receivers", adminToken, map[string]any{"callback_url": "https://a.example/"}, 422, "invalid_field", "name"},
		{"receiver without url", "POST", "/v1/receivers", adminToken, map[string]any{"name": "a"}, 422, "invalid_field", "callback_url"},
		{"receiver ftp url", "POST", "/v1/receivers", adminToken, map[string]any{"name": "a", "callback_url": "ftp://a.example/"}, 422, "invalid_field", "callback_url"},
		{"receiver loopback url", "POST", "/v1/receivers", adminToken, map[string]any{"name": "a", "callback_url": "http://127.0.0.1:9000/"}, 422, "invalid_field", "callback_url"},
		{"receiver bad retry duration", "POST", "/v1/receivers", adminToken, map[string]any{"name": "a", "callback_url": "https://a.example/", "retry": map[string]any{"base": "soon"}}, 422, "invalid_field", "retry"},
		{"receiver too many attempts", "POST", "/v1/receivers", adminToken, map[string]any{"name": "a", "callback_url": "https://a.example/", "retry": map[string]any{"max_attempts": 1000}}, 422, "invalid_field", "retry"},
		{"receiver timeout too long", "POST", "/v1/receivers", adminToken, map[string]any{"name": "a", "callback_url": "https://a.example/", "timeout": "5m"}, 422, "invalid_field", "timeout"},
		{"receiver empty success body", "POST", "/v1/receivers", adminToken, map[string]any{"name": "a", "callback_url": "https://a.example/", "success_body": ""}, 422, "invalid_field", "success_body"},
		{"receiver create by producer", "POST", "/v1/receivers", producerToken, map[string]any{"name": "a", "callback_url": "https://a.example/"}, 403, "forbidden", ""},
		{"patch unknown receiver", "PATCH", "/v1/receivers/5f0c2d3e-0000-4000-8000-000000000000", adminToken, map[string]any{"name": "b"}, 404, "not_found", ""},
		{"patch malformed id", "PATCH", "/v1/receivers/nope", adminToken, map[string]any{"name": "b"}, 404, "not_found", ""},
		{"rotate with bad grace", "POST", "/v1/receivers/" + r.ID + "/rotate-secret", adminToken, map[string]any{"grace": "30d"}, 422, "invalid_field", "grace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var code int
			var raw []byte
			if tc.status == 415 {
				req, _ := http.NewRequest(tc.method, s.URL+tc.path, strings.NewReader(`{}`))
				req.Header.Set("Authorization", "Bearer "+tc.token)
				req.Header.Set("Content-Type", "text/plain")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				code = resp.StatusCode
				raw = make([]byte, 4096)
				n, _ := resp.Body.Read(raw)
				raw = raw[:n]
			} else {
				code, raw = s.call(tc.method, tc.path, tc.token, tc.body, nil)
			}
			var body apiErrorBody
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatalf("status %d, body is not the JSON error shape: %s", code, raw)
			}
			if code != tc.status || body.Error.Code != tc.code || body.Error.Field != tc.field || body.Error.Message == "" {
				t.Fatalf("got %d %s, want %d code=%s field=%s", code, raw, tc.status, tc.code, tc.field)
			}
		})
	}
}

func TestPrivateCallbackAllowedOnlyWhenConfigured(t *testing.T) {
	t.Parallel()
	strict := newStack(t, withTargets(netguard.Policy{}))
	if code, raw := strict.call("POST", "/v1/receivers", adminToken, map[string]any{"name": "a", "callback_url": "http://127.0.0.1:9/"}, nil); code != 422 {
		t.Fatalf("loopback callback under the default policy: %d %s", code, raw)
	}
	allowList := newStack(t, withTargets(netguard.Policy{Allow: netguardPrefixes(t, "127.0.0.1/32")}))
	if code, raw := allowList.call("POST", "/v1/receivers", adminToken, map[string]any{"name": "a", "callback_url": "http://127.0.0.1:9/"}, nil); code != 201 {
		t.Fatalf("loopback callback on the allow-list: %d %s", code, raw)
	}
	if code, raw := allowList.call("POST", "/v1/receivers", adminToken, map[string]any{"name": "a", "callback_url": "http://10.1.2.3/"}, nil); code != 422 {
		t.Fatalf("private callback outside the allow-list: %d %s", code, raw)
	}
}

func netguardPrefixes(t *testing.T, s string) []netip.Prefix {
	p, err := netguard.ParsePolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p.Allow
}
