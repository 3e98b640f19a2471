package notifier_test

import (
	"context"
	"net/http/httptest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/cmd/notifyd/notifydtest"
	"github.com/notifyd/notifyd/internal/testenv"
	"github.com/notifyd/notifyd/query/webhook"
)

// exampleEnv is the set-up the examples leave out: a notifyd running in
// process on its own Postgres database and Redis index, and one receiver
// whose endpoint verifies each callback and hands it to the example.
type exampleEnv struct {
	redisAddr  string
	redisDB    int
	receiverID string
	// producerDB is the URL of a database of the producer's own, for the
	// outbox.
	producerDB string
	// notifydDB is notifyd's own database, which a relay reads to confirm
	// that a notification was recorded.
	notifydDB *pgxpool.Pool
	events    chan *webhook.Event
	tb        *testenv.ExampleTB
}

func startNotifyd(name string) *exampleEnv {
	s, tb := notifydtest.StartExample(name)
	env := &exampleEnv{
		redisAddr: s.Redis.Options().Addr, redisDB: s.Redis.Options().DB,
		producerDB: testenv.Database(tb), notifydDB: s.Store.Pool(), events: make(chan *webhook.Event, 16), tb: tb,
	}
	// The endpoint's address is needed to register the receiver, and the
	// receiver's signing secret to verify: listen first, serve after.
	srv := httptest.NewUnstartedServer(nil)
	r := s.CreateReceiver("http://"+srv.Listener.Addr().String()+"/notifyd", nil)
	v, err := webhook.NewVerifier(r.SigningSecret)
	if err != nil {
		tb.Fatal(err)
	}
	srv.Config.Handler = webhook.Handler(v, func(_ context.Context, e *webhook.Event) error {
		env.events <- e
		return nil
	})
	srv.Start()
	tb.Cleanup(srv.Close)
	env.receiverID = r.ID
	return env
}

// nextCallback waits for the receiver's next verified callback.
func (env *exampleEnv) nextCallback() *webhook.Event {
	select {
	case e := <-env.events:
		return e
	case <-time.After(30 * time.Second):
		env.tb.Fatal("no callback within 30 s")
		return nil
	}
}

// stop ends notifyd and drops the databases.
func (env *exampleEnv) stop() { env.tb.Close() }
