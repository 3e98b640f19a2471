package query

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/notifyd/notifyd/internal/circuit"
)

// POST /v1/receivers/{id}/recover resets the receiver's circuit for the
// whole fleet (and announces it), even when nothing is left to recover:
// the receiver says it is fixed.
func TestRecoverResetsTheCircuit(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	ctx := context.Background()
	r, other := a.receiver(), a.receiver()
	for _, rc := range []testReceiver{r, other} {
		if err := circuit.SetOpen(ctx, a.rdb, rc.ID, circuit.Open{Until: time.Now().Add(time.Minute), Cooldown: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	sub := a.rdb.Subscribe(ctx, circuit.Channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}

	body := map[string]string{"since": time.Now().Add(-time.Hour).Format(time.RFC3339Nano)}
	a.must(http.StatusAccepted, "POST", "/v1/receivers/"+r.ID.String()+"/recover", r.APIKey, body, nil)

	if _, open, err := circuit.Get(ctx, a.rdb, r.ID); err != nil || open {
		t.Fatalf("recovered receiver's circuit: open=%v err=%v, want closed", open, err)
	}
	if _, open, err := circuit.Get(ctx, a.rdb, other.ID); err != nil || !open {
		t.Fatalf("another receiver's circuit: open=%v err=%v, want it left open", open, err)
	}
	// Other installations may share the server's channels: skip their news.
	deadline, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		msg, err := sub.ReceiveMessage(deadline)
		if err != nil {
			t.Fatalf("no announcement of the reset: %v", err)
		}
		if msg.Payload == r.ID.String() {
			return
		}
	}
}
