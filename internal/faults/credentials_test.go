package faults

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestRevocationReachesEveryAPIProcess runs two real API processes on one
// database and Redis. A receiver key revoked and a producer record deleted
// through one are refused by the other within a second, although the other
// had them cached (its cache lives 5 s): the invalidation travels through
// Redis pub/sub.
func TestRevocationReachesEveryAPIProcess(t *testing.T) {
	faultTest(t)
	c := newCluster(t, "", nil)
	_, one := c.startAPI()
	_, two := c.startAPI()
	rid := one.createReceiver("merchant", "http://127.0.0.1:1/hook")

	newKey := func() (id, key string) {
		var k struct{ ID, Key string }
		one.Call("POST", "/v1/receivers/"+rid+"/api-keys", adminToken, map[string]any{"name": "k"}, http.StatusCreated, &k)
		return k.ID, k.Key
	}
	status := func(a *api, key string) int {
		code, _ := a.Do("GET", "/v1/receivers/"+rid, key, nil)
		return code
	}
	// The other process really caches: a key deleted behind its back (in
	// the database, no message) is still accepted right after. Retried, as
	// a process starts caching only once it has subscribed.
	cached := false
	for range 20 {
		id, key := newKey()
		if status(two, key) != http.StatusOK {
			t.Fatal("a new key is refused")
		}
		if _, err := c.db.Exec(context.Background(), `DELETE FROM receiver_api_keys WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		if status(two, key) == http.StatusOK {
			cached = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !cached {
		t.Fatal("the second API process never served a key from its cache")
	}

	// Revoked through one, refused by two within a second.
	id, key := newKey()
	if code := status(two, key); code != http.StatusOK {
		t.Fatalf("the key on the second process: %d", code)
	}
	one.Call("DELETE", "/v1/receivers/"+rid+"/api-keys/"+id, adminToken, nil, http.StatusNoContent, nil)
	refusedWithin(t, "revoked key", time.Second, func() bool { return status(two, key) == http.StatusUnauthorized })

	// A producer record deleted through one: two refuses its token.
	var p struct{ ID, Token string }
	one.Call("POST", "/v1/producers", adminToken, map[string]any{"name": "billing", "receivers": []string{rid}}, http.StatusCreated, &p)
	ingest := func(key string) int {
		code, _ := two.Do("POST", "/v1/notifications", p.Token, map[string]any{
			"receiver_id": rid, "event_type": "trade.paid", "idempotency_key": key, "payload": map[string]any{},
		})
		return code
	}
	if code := ingest("before"); code != http.StatusAccepted {
		t.Fatalf("the producer on the second process: %d", code)
	}
	one.Call("DELETE", "/v1/producers/"+p.ID, adminToken, nil, http.StatusNoContent, nil)
	refusedWithin(t, "deleted producer", time.Second, func() bool { return ingest("after") == http.StatusUnauthorized })
}

// refusedWithin fails t unless refused() holds within bound, measured from
// now.
func refusedWithin(t *testing.T, what string, bound time.Duration, refused func() bool) {
	t.Helper()
	start := time.Now()
	for !refused() {
		if time.Since(start) > bound {
			t.Fatalf("%s still accepted %s after the change", what, time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%s refused after %s", what, time.Since(start).Round(time.Millisecond))
}
