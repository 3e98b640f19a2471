package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/notifier"
)

// outboxLossGrace is the relays' confirmation grace in these tests: short,
// so that a lost row is re-sent within the test's patience.
const outboxLossGrace = 500 * time.Millisecond

// deliveredOnceByAttempt checks every notification delivered by attempt 1
// alone, and that the receiver got exactly one request for each.
func (s *stack) deliveredOnceByAttempt(rs *receiverServer, ids []string) {
	s.t.Helper()
	for _, id := range ids {
		s.deliveredOnce(id)
		if as := s.attempts(id); len(as) == 1 && as[0].AttemptNo != 1 {
			s.t.Errorf("%s: attempt number %d on record, want 1", id, as[0].AttemptNo)
		}
	}
	got := hitsByID(s.t, rs)
	for _, id := range ids {
		if got[id] != 1 {
			s.t.Errorf("%s: receiver got %d requests, want 1", id, got[id])
		}
	}
	if len(got) != len(ids) {
		s.t.Errorf("receiver got %d notifications, want %d", len(got), len(ids))
	}
}

// The relay has queued every row in Redis; Redis restarts empty before any
// worker took a task. The rows are not done (notifyd had recorded none of
// the notifications), so the relay sends them again after the grace, and
// each is delivered once, by attempt 1. Both confirmation sources: notifyd's
// database (the sidecar's) and its API (a relay in the producer's process).
func TestOutboxSurvivesRedisLossAfterRelay(t *testing.T) {
	t.Parallel()
	confirmers := []struct {
		name string
		make func(s *stack) notifier.Confirmer
	}{
		{"database", func(s *stack) notifier.Confirmer { return notifier.DatabaseConfirmer(s.store.Pool()) }},
		{"api", func(s *stack) notifier.Confirmer { return notifier.APIConfirmer(s.URL, producerToken, nil) }},
	}
	for _, tc := range confirmers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			outboxRedisLossAfterRelay(t, tc.make)
		})
	}
}

func outboxRedisLossAfterRelay(t *testing.T, confirmer func(*stack) notifier.Confirmer) {
	s := newStack(t)
	rs := newReceiverServer(t, statusResponder(200))
	r := s.receiver(rs.URL, nil)
	// Workers run but take nothing from the first-attempt queue until the
	// flush, which also clears the pause: as if they started afterwards.
	if err := asynq.NewInspectorFromRedisClient(s.rdb).PauseQueue(tasks.QueueFirst); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, s)
	const total = 20
	ids := p.payMany(r.ID, "order", total)
	p.relay(notifier.WithRelayConfirmGrace(outboxLossGrace), notifier.WithRelayConfirmer(confirmer(s)))
	p.waitRows("sent_at IS NOT NULL", total, 15*time.Second)
	// Past the grace the relay asks notifyd, which has none of them: Redis
	// still holds the tasks, so nothing is re-sent yet.
	time.Sleep(2 * outboxLossGrace)
	if n := len(rs.Hits()); n != 0 {
		t.Fatalf("receiver got %d requests before the flush; the queue should be paused", n)
	}
	if n := p.count("confirmed_at IS NOT NULL OR resends > 0"); n != 0 {
		t.Fatalf("%d rows confirmed or re-sent while Redis held every task", n)
	}

	s.flushRedis()
	s.deliveredOnceByAttempt(rs, ids)
	p.waitRows("confirmed_at IS NOT NULL", total, 15*time.Second)
	if n := p.count("resends >= 1"); n != total {
		t.Errorf("%d rows re-sent, want all %d (a re-send racing the recording may count twice)", n, total)
	}
	if n := p.count("dead_at IS NOT NULL"); n != 0 {
		t.Errorf("%d dead rows", n)
	}
}

// POST /v1/notifications/recorded, which APIConfirmer calls: producers and
// admins learn which ids notifyd has, and nothing else.
func TestRecordedEndpoint(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	rs := newReceiverServer(t, statusResponder(200))
	r := s.receiver(rs.URL, nil)
	known := s.send(r.ID, "order-1", map[string]any{"a": 1})
	unknown := uuid.NewString()
	many := make([]string, 1001)
	for i := range many {
		many[i] = uuid.NewString()
	}
	tests := []struct {
		name  string
		token string
		ids   any
		code  int
		want  string
	}{
		{"producer", producerToken, []string{unknown, known, known}, 200, `{"recorded":["` + known + `"]}`},
		{"admin", adminToken, []string{known}, 200, `{"recorded":["` + known + `"]}`},
		{"none known", producerToken, []string{unknown}, 200, `{"recorded":[]}`},
		{"receiver", r.APIKey, []string{known}, 403, ""},
		{"not a uuid", producerToken, []string{"order-1"}, 422, ""},
		{"too many", producerToken, many, 422, ""},
	}
	for _, tc := range tests {
		code, body := s.call("POST", "/v1/notifications/recorded", tc.token, map[string]any{"ids": tc.ids}, nil)
		if code != tc.code || (tc.want != "" && strings.TrimSpace(string(body)) != tc.want) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, body, tc.code, tc.want)
		}
	}
}

// Rows committed while no relay runs; Redis restarts empty (losing the
// receiver registry with everything else); then a relay and the workers
// start. Every notification is delivered once, nothing needed re-sending.
func TestOutboxSurvivesRedisLossBeforeRelay(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	rs := newReceiverServer(t, statusResponder(200))
	r := s.receiver(rs.URL, nil)
	p := newProducer(t, s)
	const total = 20
	ids := p.payMany(r.ID, "order", total)
	s.flushRedis()

	p.relay(notifier.WithRelayConfirmGrace(outboxLossGrace))
	s.deliveredOnceByAttempt(rs, ids)
	p.waitRows("confirmed_at IS NOT NULL", total, 15*time.Second)
	if n := p.count("resends = 0 AND attempts >= 1"); n != total {
		t.Errorf("%d rows sent without a re-send, want all %d", n, total)
	}
	for _, id := range ids {
		if n := s.waitStatus(id, store.StatusDelivered, time.Second); n.Attempts != 1 {
			t.Errorf("%s: %d attempts", id, n.Attempts)
		}
	}
}
