package client_test

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/testenv"
)

// exampleEnv is the set-up the examples leave out: a notifyd running in
// process on its own Postgres database and Redis index, with one receiver
// whose endpoint answers 200, and notifications already delivered to it.
type exampleEnv struct {
	url           string
	receiverID    string
	receiverToken string // the receiver's API key: it sees its own notifications
	producerToken string
	tb            *testenv.ExampleTB
}

// startNotifyd starts notifyd and sends one notification for each key,
// in order, waiting until each is delivered.
func startNotifyd(name string, delivered ...string) *exampleEnv {
	s, tb := notifydtest.StartExample(name)
	cb := apitest.NewCallbackServer(tb, http.StatusOK)
	r := s.CreateReceiver(cb.URL, nil)
	for _, key := range delivered {
		var out struct{ ID string }
		s.Call(http.MethodPost, "/v1/notifications", apitest.ProducerToken, map[string]any{
			"receiver_id": r.ID, "event_type": "order.paid", "idempotency_key": key,
			"payload": json.RawMessage(`{"amount":4200}`),
		}, http.StatusAccepted, &out)
		s.WaitStatus(30*time.Second, "delivered", out.ID)
	}
	return &exampleEnv{url: s.URL, receiverID: r.ID, receiverToken: r.APIKey, producerToken: apitest.ProducerToken, tb: tb}
}

// stop ends notifyd and drops its database.
func (env *exampleEnv) stop() { env.tb.Close() }
