package query

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/tasks"
)

// TestScopedProducer: a producer record for receiver A ingests, cancels and
// confirms for A only; B, existing or not, is refused naming receiver_id.
// All-receivers records and the static tokens reach every receiver.
func TestScopedProducer(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ra, rb := a.receiver(), a.receiver()
	scoped := a.producerRecord([]uuid.UUID{ra.ID})
	all := a.producerRecord(nil)
	if !wellFormed(scoped.Token, ProducerTokenPrefix) {
		t.Fatalf("producer token %q", scoped.Token)
	}
	send := func(token string, receiver uuid.UUID, key string) (int, []byte) {
		return a.do("POST", "/v1/notifications", token, map[string]any{
			"receiver_id": receiver, "event_type": "trade.paid", "idempotency_key": key, "payload": map[string]any{"k": key},
		})
	}
	refused := func(what string, code int, raw []byte) {
		t.Helper()
		if code != http.StatusForbidden {
			t.Fatalf("%s: %d %s, want 403", what, code, raw)
		}
		if e := apiErr(t, raw); e.Code != "receiver_not_allowed" || e.Field != "receiver_id" {
			t.Fatalf("%s: %+v", what, e)
		}
	}

	if code, raw := send(scoped.Token, ra.ID, "a-1"); code != http.StatusAccepted {
		t.Fatalf("scoped producer to its receiver: %d %s", code, raw)
	}
	code, raw := send(scoped.Token, rb.ID, "b-1")
	refused("scoped producer to another receiver", code, raw)
	code, raw = send(scoped.Token, uuid.New(), "x-1")
	refused("scoped producer to a receiver that does not exist", code, raw)
	for _, tok := range []string{all.Token, testProducerToken} {
		if code, raw := send(tok, rb.ID, "b-"+tok[:4]); code != http.StatusAccepted {
			t.Fatalf("all-receivers producer to B: %d %s", code, raw)
		}
	}

	aID := tasks.NotificationID(ra.ID, "a-1")
	bID := tasks.NotificationID(rb.ID, "b-"+testProducerToken[:4])
	// Cancel: B's notification is refused, A's goes, a missing one is 404.
	code, raw = a.do("POST", "/v1/notifications/"+bID.String()+"/cancel", scoped.Token, nil)
	refused("scoped producer cancelling B's notification", code, raw)
	a.must(http.StatusOK, "POST", "/v1/notifications/"+aID.String()+"/cancel", scoped.Token, nil, nil)
	a.must(http.StatusNotFound, "POST", "/v1/notifications/"+uuid.NewString()+"/cancel", scoped.Token, nil, nil)

	// Recorded: B's notification looks unrecorded to the scoped producer.
	var rec struct{ Recorded []uuid.UUID }
	ids := map[string]any{"ids": []uuid.UUID{aID, bID}}
	a.must(http.StatusOK, "POST", "/v1/notifications/recorded", scoped.Token, ids, &rec)
	if len(rec.Recorded) != 1 || rec.Recorded[0] != aID {
		t.Fatalf("recorded for the scoped producer: %v, want only %s", rec.Recorded, aID)
	}
	a.must(http.StatusOK, "POST", "/v1/notifications/recorded", all.Token, ids, &rec)
	if len(rec.Recorded) != 2 {
		t.Fatalf("recorded for an all-receivers producer: %v", rec.Recorded)
	}

	// The listing shows the records, never a token.
	code, raw = a.do("GET", "/v1/producers", testAdminToken, nil)
	if code != http.StatusOK || strings.Contains(string(raw), scoped.Token) || strings.Contains(string(raw), all.Token) {
		t.Fatalf("listing: %d %s", code, raw)
	}
	var list struct {
		Data []struct {
			ID           uuid.UUID
			AllReceivers bool `json:"all_receivers"`
			Receivers    []uuid.UUID
			Prefix       string
		}
	}
	if err := json.Unmarshal(raw, &list); err != nil || len(list.Data) != 2 {
		t.Fatalf("listing: %s %v", raw, err)
	}
	if p := list.Data[0]; p.ID != scoped.ID || p.AllReceivers || len(p.Receivers) != 1 || p.Receivers[0] != ra.ID ||
		!strings.HasPrefix(scoped.Token, p.Prefix) || len(p.Prefix) <= len(ProducerTokenPrefix) {
		t.Fatalf("scoped producer listed as %+v", p)
	}
	if !list.Data[1].AllReceivers {
		t.Fatalf("all-receivers producer listed as %+v", list.Data[1])
	}

	// Deleted: the token stops working at once; deleting again is 404.
	a.must(http.StatusNoContent, "DELETE", "/v1/producers/"+scoped.ID.String(), testAdminToken, nil, nil)
	if code, raw := send(scoped.Token, ra.ID, "a-2"); code != http.StatusUnauthorized {
		t.Fatalf("deleted producer: %d %s", code, raw)
	}
	a.must(http.StatusNotFound, "DELETE", "/v1/producers/"+scoped.ID.String(), testAdminToken, nil, nil)
}

// TestProducerRequests: what POST /v1/producers refuses.
func TestProducerRequests(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	r := a.receiver()
	many := make([]string, maxProducerReceivers+1)
	for i := range many {
		many[i] = uuid.NewString()
	}
	tests := []struct {
		name string
		body map[string]any
	}{
		{"no name", map[string]any{"receivers": "all"}},
		{"no receivers", map[string]any{"name": "p"}},
		{"null receivers", map[string]any{"name": "p", "receivers": nil}},
		{"receivers some", map[string]any{"name": "p", "receivers": "some"}},
		{"receivers empty", map[string]any{"name": "p", "receivers": []string{}}},
		{"receivers not ids", map[string]any{"name": "p", "receivers": []string{"x"}}},
		{"receivers an object", map[string]any{"name": "p", "receivers": map[string]any{"all": true}}},
		{"receiver unknown", map[string]any{"name": "p", "receivers": []uuid.UUID{r.ID, uuid.New()}}},
		{"too many receivers", map[string]any{"name": "p", "receivers": many}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			code, raw := a.do("POST", "/v1/producers", testAdminToken, tc.body)
			if code != http.StatusUnprocessableEntity {
				t.Fatalf("%d %s, want 422", code, raw)
			}
			want := "receivers"
			if tc.name == "no name" {
				want = "name"
			}
			if e := apiErr(t, raw); e.Field != want {
				t.Fatalf("field %q, want %q", e.Field, want)
			}
		})
	}
	// A receiver listed twice is kept once.
	var p struct{ Receivers []uuid.UUID }
	a.must(http.StatusCreated, "POST", "/v1/producers", testAdminToken,
		map[string]any{"name": "p", "receivers": []uuid.UUID{r.ID, r.ID}}, &p)
	if len(p.Receivers) != 1 {
		t.Fatalf("receivers %v", p.Receivers)
	}
	a.must(http.StatusNotFound, "DELETE", "/v1/producers/not-an-id", testAdminToken, nil, nil)
}
