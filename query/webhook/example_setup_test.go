package webhook_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/apitest"
	"github.com/notifyd/notifyd/internal/testenv"
)

// exampleEnv is the set-up the examples leave out: a notifyd running in
// process on its own Postgres database and Redis index, and one receiver
// registered for a loopback address that serve puts the example's handler
// on.
type exampleEnv struct {
	signingSecret string
	receiverID    string
	srv           *httptest.Server
	stack         *notifydtest.Stack
	tb            *testenv.ExampleTB
}

func startNotifyd(name string) *exampleEnv {
	s, tb := notifydtest.StartExample(name)
	// The receiver is registered before its handler exists: the handler
	// needs the receiver's signing secret. Listen first, serve after.
	srv := httptest.NewUnstartedServer(nil)
	tb.Cleanup(srv.Close)
	r := s.CreateReceiver("http://"+srv.Listener.Addr().String()+"/notifyd", nil)
	return &exampleEnv{signingSecret: r.SigningSecret, receiverID: r.ID, srv: srv, stack: s, tb: tb}
}

// serve answers the receiver's callbacks with h.
func (env *exampleEnv) serve(h http.Handler) {
	env.srv.Config.Handler = h
	env.srv.Start()
}

// send hands a notification to notifyd and returns once it is delivered,
// so whatever the handler printed comes before what follows.
func (env *exampleEnv) send(eventType, key, payload string) {
	var out struct{ ID string }
	env.stack.Call(http.MethodPost, "/v1/notifications", apitest.ProducerToken, map[string]any{
		"receiver_id": env.receiverID, "event_type": eventType, "idempotency_key": key, "payload": json.RawMessage(payload),
	}, http.StatusAccepted, &out)
	env.stack.WaitStatus(30*time.Second, "delivered", out.ID)
}

// stop ends notifyd and drops its database.
func (env *exampleEnv) stop() { env.tb.Close() }
