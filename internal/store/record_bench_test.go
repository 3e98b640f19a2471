package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// BenchmarkFirstAttemptRecord is the worker's common case alone: batches of
// first attempts that succeed, each creating its notification (the Go
// client enqueues without writing), for 100 receivers, on tables that grow
// from empty as in the bench's throughput run. pg-µs/op is the CPU time of
// the session's Postgres backend per notification (the WAL flush and a busy
// machine's waiting excluded); an op is one notification.
//
//	go test -run - -bench FirstAttemptRecord -benchtime 20000x ./internal/store/
func BenchmarkFirstAttemptRecord(b *testing.B) {
	ctx := context.Background()
	s, err := store.Open(ctx, testenv.Database(b)+"&pool_max_conns=1")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var pid int
	if err := s.Pool().QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	receivers := make([]uuid.UUID, 100)
	for i := range receivers {
		r := &store.Receiver{ID: uuid.New(), Name: fmt.Sprintf("bench-%d", i), CallbackURL: "https://example.com/cb", SigningSecret: "whsec_x"}
		if err := s.CreateReceiver(ctx, r, store.HashAPIKey(uuid.NewString())); err != nil {
			b.Fatal(err)
		}
		receivers[i] = r.ID
	}
	const batch = 40 // about what the bench's recorder writes per statement
	recs := make([]store.AttemptRecord, 0, batch)
	payload := []byte(`{"order":"A-1","amount":100}`)
	defer reportServerCPU(b, []string{"record"}, []int{pid})()
	for i := 0; b.Loop(); i++ {
		id, rid := uuid.New(), receivers[i%len(receivers)]
		recs = append(recs, store.AttemptRecord{
			Attempt: store.Attempt{NotificationID: id, AttemptNo: 1, StartedAt: time.Now(), Duration: time.Millisecond,
				StatusCode: 200, Outcome: store.OutcomeSuccess},
			NewStatus: store.StatusDelivered,
			Create: &store.NewNotification{ID: id, ReceiverID: rid, EventType: "trade.paid", IdempotencyKey: id.String(),
				Payload: payload, MaxAttempts: 10},
			HealthOf: rid,
		})
		if len(recs) == batch {
			if err := s.RecordAttempts(ctx, recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
}
