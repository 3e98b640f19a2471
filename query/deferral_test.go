package query

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/circuit"
)

// While a receiver's circuit is open, its pending notification's view (by
// id and by key) says it is deferred, until when and why; closed, or once
// the notification is terminal, the view has no deferral.
func TestNotificationViewShowsCircuitDeferral(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ctx := context.Background()
	r := a.receiver()
	pending := a.insert(r, "order-1", "trade.paid")
	done := a.insert(r, "order-2", "trade.paid")
	a.exec(`UPDATE notifications SET status = 'delivered' WHERE id = $1`, done.ID)

	type view struct {
		Status   string
		Deferral *struct {
			Reason, Message string
			Until           time.Time
		}
	}
	get := func(path string) view {
		t.Helper()
		var v view
		_, raw := a.do("GET", path, r.APIKey, nil)
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v: %s", path, err, raw)
		}
		return v
	}
	byID, byKey := "/v1/notifications/"+pending.ID.String(), "/v1/notifications/by-key/order-1"
	for _, p := range []string{byID, byKey} {
		if v := get(p); v.Deferral != nil {
			t.Fatalf("%s with the circuit closed: deferral %+v", p, v.Deferral)
		}
	}

	until := time.Now().Add(90 * time.Second).Truncate(time.Millisecond)
	if err := circuit.SetOpen(ctx, a.rdb, r.ID, circuit.Open{Until: until, Cooldown: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{byID, byKey} {
		v := get(p)
		if v.Deferral == nil || v.Deferral.Reason != "circuit_open" || !v.Deferral.Until.Equal(until) ||
			!strings.Contains(v.Deferral.Message, "circuit is open") || !strings.Contains(v.Deferral.Message, "recover") {
			t.Fatalf("%s with the circuit open: deferral %+v, want circuit_open until %s", p, v.Deferral, until)
		}
	}
	if v := get("/v1/notifications/" + done.ID.String()); v.Status != "delivered" || v.Deferral != nil {
		t.Errorf("a delivered notification shows %+v", v)
	}

	if err := circuit.Close(ctx, a.rdb, r.ID); err != nil {
		t.Fatal(err)
	}
	if v := get(byID); v.Deferral != nil {
		t.Errorf("after the circuit closed: deferral %+v", v.Deferral)
	}
}
