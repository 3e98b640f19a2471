package notifier

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// recordInNotifyd writes the notification of an outbox row into notifyd's
// notifications table, as a worker does at the first attempt.
func (f *relayFixture) recordInNotifyd(t *testing.T, key string) {
	t.Helper()
	_, _, err := store.New(f.pool).InsertNotification(context.Background(), store.NewNotification{
		ID: uuid.MustParse(f.idOf(t, key)), ReceiverID: f.active, EventType: "trade.paid",
		IdempotencyKey: key, Payload: []byte(`{}`), MaxAttempts: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *relayFixture) idOf(t *testing.T, key string) string {
	t.Helper()
	var id uuid.UUID
	if err := f.pool.QueryRow(context.Background(), `SELECT notification_id FROM notifyd_outbox WHERE idempotency_key = $1`, key).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// rowStates describes each outbox row as key=state/resends.
func (f *relayFixture) rowStates(t *testing.T) string {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT idempotency_key,
		CASE WHEN dead_at IS NOT NULL THEN 'dead' WHEN confirmed_at IS NOT NULL THEN 'confirmed'
			WHEN sent_at IS NOT NULL THEN 'sent' ELSE 'unsent' END, resends
		FROM notifyd_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out := ""
	for rows.Next() {
		var k, st string
		var n int
		if err := rows.Scan(&k, &st, &n); err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s=%s/%d ", k, st, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A sent row is done only once notifyd has recorded its notification; until
// then the relay re-sends it after each grace, which Redis refuses while it
// holds the task and accepts once Redis has lost it.
func TestRelayConfirmsRecordedRowsAndResendsLostOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const grace = 300 * time.Millisecond
	f := newRelayFixture(t, true, WithRelayConfirmGrace(grace))
	if err := store.New(f.pool).CreateReceiver(ctx, &store.Receiver{ID: f.active, Name: "m", CallbackURL: "http://127.0.0.1:1/hook",
		SigningSecret: "s"}, []byte("key-hash")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "k2", "k3"} {
		f.enqueue(t, validNotification(f.active, k))
	}
	if n, err := f.relay.relayBatch(ctx, DefaultOutboxTable); err != nil || n != 3 {
		t.Fatalf("relayBatch = %d, %v", n, err)
	}
	f.recordInNotifyd(t, "k1")

	steps := []struct {
		name       string
		before     func()
		wait       bool // past the grace
		took       int
		states     string
		pendingIDs []string // keys whose task Redis holds afterwards
	}{
		{"within the grace nothing is touched", nil, false, 0,
			"k1=sent/0 k2=sent/0 k3=sent/0 ", []string{"k1", "k2", "k3"}},
		{"recorded is confirmed, queued is left queued", nil, true, 3,
			"k1=confirmed/0 k2=sent/0 k3=sent/0 ", []string{"k1", "k2", "k3"}},
		{"Redis restarted empty: unrecorded rows are sent again", func() {
			if err := f.rdb.FlushDB(ctx).Err(); err != nil { // the test's own DB index
				t.Fatal(err)
			}
			f.loadRegistry(t) // a notifyd process re-syncs it
		}, true, 2, "k1=confirmed/0 k2=sent/1 k3=sent/1 ", []string{"k2", "k3"}},
		{"the re-sent notifications recorded: confirmed", func() {
			f.recordInNotifyd(t, "k2")
			f.recordInNotifyd(t, "k3")
		}, true, 2, "k1=confirmed/0 k2=confirmed/1 k3=confirmed/1 ", []string{"k2", "k3"}},
		{"nothing left to confirm", nil, true, 0,
			"k1=confirmed/0 k2=confirmed/1 k3=confirmed/1 ", []string{"k2", "k3"}},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		if st.wait {
			time.Sleep(grace + 50*time.Millisecond)
		}
		n, err := f.relay.confirmBatch(ctx, DefaultOutboxTable)
		if err != nil || n != st.took {
			t.Fatalf("%s: confirmBatch = %d, %v; want %d", st.name, n, err, st.took)
		}
		if got := f.rowStates(t); got != st.states {
			t.Errorf("%s: rows %q, want %q", st.name, got, st.states)
		}
		var want []string
		for _, k := range st.pendingIDs {
			want = append(want, f.idOf(t, k)+":1")
		}
		var got []string
		for _, d := range f.pending(t) {
			got = append(got, d.TaskID())
		}
		slices.Sort(got)
		slices.Sort(want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: tasks in Redis %v, want %v", st.name, got, want)
		}
	}
	s, err := f.relay.stats(ctx, DefaultOutboxTable)
	if err != nil || s.unconfirmed != 0 || s.backlog != 0 {
		t.Errorf("stats = %+v, %v", s, err)
	}
}

// The schema upgrades a table made by the previous version: rows sent then
// count as confirmed (they may be long gone from notifyd), unsent rows
// stay unsent, and a later run confirms nothing on its own.
func TestMigrateOutboxUpgradesTableWithoutConfirmation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := testenv.Pool(t)
	if _, err := pool.Exec(ctx, `CREATE TABLE notifyd_outbox (
		id bigserial PRIMARY KEY, notification_id uuid NOT NULL, receiver_id uuid NOT NULL,
		event_type text NOT NULL, idempotency_key text NOT NULL, callback_url text NOT NULL DEFAULT '',
		payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), sent_at timestamptz,
		dead_at timestamptz, attempts integer NOT NULL DEFAULT 0, last_error text);
		CREATE INDEX notifyd_outbox_unsent_idx ON notifyd_outbox (id) WHERE sent_at IS NULL;
		CREATE INDEX notifyd_outbox_sent_idx ON notifyd_outbox (sent_at) WHERE sent_at IS NOT NULL;
		INSERT INTO notifyd_outbox (notification_id, receiver_id, event_type, idempotency_key, payload, sent_at) VALUES
			(gen_random_uuid(), gen_random_uuid(), 'e', 'old-sent', '{}', now() - interval '1 day'),
			(gen_random_uuid(), gen_random_uuid(), 'e', 'old-unsent', '{}', NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := MigrateOutbox(ctx, pool, ""); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO notifyd_outbox (notification_id, receiver_id, event_type, idempotency_key, payload, sent_at)
		VALUES (gen_random_uuid(), gen_random_uuid(), 'e', 'new-sent', '{}', now())`); err != nil {
		t.Fatal(err)
	}
	if err := MigrateOutbox(ctx, pool, ""); err != nil {
		t.Fatalf("second run: %v", err)
	}
	f := &relayFixture{pool: pool}
	if got, want := f.rowStates(t), "old-sent=confirmed/0 old-unsent=unsent/0 new-sent=sent/0 "; got != want {
		t.Errorf("rows %q, want %q", got, want)
	}
	var sentIdx bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_indexes WHERE indexname = 'notifyd_outbox_sent_idx')`).Scan(&sentIdx); err != nil || sentIdx {
		t.Errorf("old pruning index still there: %v, %v", sentIdx, err)
	}
}
