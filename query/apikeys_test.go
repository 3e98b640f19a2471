package query

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/netguard"
	"github.com/notifyd/notifyd/internal/store"
)

type testKey struct {
	ID         uuid.UUID
	ReceiverID uuid.UUID `json:"receiver_id"`
	Name       string
	Prefix     string
	Key        string
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// TestAPIKeyRotation walks a rotation: a second key is created, both work,
// the first is revoked and stops working at once while the second goes on.
func TestAPIKeyRotation(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r, other := a.receiver(), a.receiver()
	keysPath := "/v1/receivers/" + r.ID.String() + "/api-keys"
	works := func(key string) int {
		code, _ := a.do("GET", "/v1/receivers/"+r.ID.String(), key, nil)
		return code
	}

	var list struct{ Data []testKey }
	a.must(http.StatusOK, "GET", keysPath, testAdminToken, nil, &list)
	if len(list.Data) != 1 || list.Data[0].Name != "default" || !strings.HasPrefix(r.APIKey, list.Data[0].Prefix) {
		t.Fatalf("a new receiver's keys: %+v", list.Data)
	}
	first := list.Data[0]

	var second testKey
	a.must(http.StatusCreated, "POST", keysPath, testAdminToken, map[string]any{"name": "2026-q3"}, &second)
	if !wellFormed(second.Key, APIKeyPrefix) || second.Name != "2026-q3" || second.ReceiverID != r.ID ||
		len(second.Prefix) != len(APIKeyPrefix)+shownPrefixLen || !strings.HasPrefix(second.Key, second.Prefix) {
		t.Fatalf("created key: %+v", second)
	}
	for _, k := range []string{r.APIKey, second.Key} {
		if code := works(k); code != http.StatusOK {
			t.Fatalf("during the rotation a key answers %d", code)
		}
	}
	// The listing shows both, never a key.
	code, raw := a.do("GET", keysPath, testAdminToken, nil)
	if code != http.StatusOK || strings.Contains(string(raw), second.Key) || strings.Contains(string(raw), r.APIKey) {
		t.Fatalf("listing: %d %s", code, raw)
	}
	a.must(http.StatusOK, "GET", keysPath, testAdminToken, nil, &list)
	if len(list.Data) != 2 || list.Data[1].ID != second.ID {
		t.Fatalf("listing during the rotation: %+v", list.Data)
	}

	// Another receiver's path cannot revoke r's key.
	a.must(http.StatusNotFound, "DELETE", "/v1/receivers/"+other.ID.String()+"/api-keys/"+first.ID.String(), testAdminToken, nil, nil)
	a.must(http.StatusNoContent, "DELETE", keysPath+"/"+first.ID.String(), testAdminToken, nil, nil)
	if code := works(r.APIKey); code != http.StatusUnauthorized {
		t.Fatalf("the revoked key answers %d", code)
	}
	if code := works(second.Key); code != http.StatusOK {
		t.Fatalf("the new key answers %d", code)
	}
	a.must(http.StatusNotFound, "DELETE", keysPath+"/"+first.ID.String(), testAdminToken, nil, nil)

	// Use is recorded (off the request path).
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.must(http.StatusOK, "GET", keysPath, testAdminToken, nil, &list)
		if len(list.Data) == 1 && list.Data[0].LastUsedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("last_used_at never set: %+v", list.Data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAPIKeyRequests: what the key routes refuse.
func TestAPIKeyRequests(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	keysPath := "/v1/receivers/" + r.ID.String() + "/api-keys"
	tests := []struct {
		name, method, path string
		body               any
		want               int
		field              string
	}{
		{"no name", "POST", keysPath, map[string]any{}, 422, "name"},
		{"empty name", "POST", keysPath, map[string]any{"name": ""}, 422, "name"},
		{"long name", "POST", keysPath, map[string]any{"name": strings.Repeat("n", maxNameLen+1)}, 422, "name"},
		{"a key of its own", "POST", keysPath, map[string]any{"name": "x", "key": "nfy_mine"}, 422, "key"},
		{"unknown receiver", "POST", "/v1/receivers/" + uuid.NewString() + "/api-keys", map[string]any{"name": "x"}, 404, ""},
		{"list of unknown receiver", "GET", "/v1/receivers/" + uuid.NewString() + "/api-keys", nil, 404, ""},
		{"revoke unknown key", "DELETE", keysPath + "/" + uuid.NewString(), nil, 404, ""},
		{"revoke malformed key id", "DELETE", keysPath + "/not-a-uuid", nil, 404, ""},
		{"revoke key id in braces", "DELETE", keysPath + "/{" + uuid.NewString() + "}", nil, 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			code, raw := a.do(tc.method, tc.path, testAdminToken, tc.body)
			if code != tc.want {
				t.Fatalf("%d %s, want %d", code, raw, tc.want)
			}
			if e := apiErr(t, raw); e.Field != tc.field {
				t.Fatalf("field %q, want %q", e.Field, tc.field)
			}
		})
	}
	// A receiver holds at most MaxAPIKeysPerReceiver keys.
	for range store.MaxAPIKeysPerReceiver - 1 {
		a.must(http.StatusCreated, "POST", keysPath, testAdminToken, map[string]any{"name": "k"}, nil)
	}
	code, raw := a.do("POST", keysPath, testAdminToken, map[string]any{"name": "one too many"})
	if code != http.StatusConflict || apiErr(t, raw).Code != "too_many_keys" {
		t.Fatalf("key beyond the bound: %d %s", code, raw)
	}
}

// TestUnknownKeyNegativeCache floods a server with made-up keys and shows
// that none but the first look-up of a well-formed key reaches Postgres:
// the server's own pool is closed after it, and it still answers 401.
func TestUnknownKeyNegativeCache(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	st, err := store.Open(context.Background(), a.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	// The per-IP limit on failed authentication would answer the flood with
	// 429 before any look-up; lifted here, the cache alone must hold.
	noAuthLimit := RateLimits{AuthFailures: Rate{PerSecond: 1e6, Burst: 1e6}}
	srv := New(st, a.rdb, a.queue, Config{AdminToken: testAdminToken, Targets: netguard.Policy{AllowPrivate: true},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RateLimits: noAuthLimit})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := apitest.NewClient(t, hs.URL)

	madeUp := []string{newAPIKey(), newProducerToken()}
	for _, k := range madeUp {
		if code, raw := c.Do("GET", "/v1/notifications", k, nil); code != http.StatusUnauthorized {
			t.Fatalf("made-up %s: %d %s", k[:4], code, raw)
		}
	}
	st.Close() // from here on, a database look-up fails with 500

	// Known-unknown keys, and tokens of no shape we issue, never reach it.
	flood := []string{"nfy_" + uuid.NewString(), "nfy_" + strings.Repeat("a", tokenSecretLen-1) + "!",
		"nfp_short", newAPIKey()[:20], "some-random-token"}
	for range 50 {
		flood = append(flood, madeUp...)
	}
	for _, k := range flood {
		if code, raw := c.Do("GET", "/v1/notifications", k, nil); code != http.StatusUnauthorized {
			t.Fatalf("%q with the database gone: %d %s, want 401 without a look-up", k, code, raw)
		}
	}
	// A fresh well-formed key does need the database: the pool is really
	// closed, so the 401s above came from the cache.
	if code, _ := c.Do("GET", "/v1/notifications", newAPIKey(), nil); code != http.StatusInternalServerError {
		t.Fatalf("a fresh key with the database gone: %d, want 500", code)
	}
}
