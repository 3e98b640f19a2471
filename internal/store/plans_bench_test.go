package store_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/testenv"
)

// BenchmarkPlanModes compares the worker's two per-notification statements
// sent as named statements with cached plans (pgx's default mode) and sent
// unnamed, planned for their arguments every time (cache_describe), on an
// analyzed table of 40,000 notifications. The two sessions take turns within
// each iteration, so that a busy machine slows both alike; pg-µs/op is the
// CPU time of each session's Postgres backend, read from /proc.
//
//	go test -run - -bench PlanModes -benchtime 5000x ./internal/store/
func BenchmarkPlanModes(b *testing.B) {
	ctx := context.Background()
	dsn := testenv.Database(b)
	modes := []string{"cache_statement", "cache_describe"}
	stores := make([]*store.Store, len(modes))
	pids := make([]int, len(modes))
	for i, mode := range modes {
		s, err := store.Open(ctx, dsn+"&pool_max_conns=1&default_query_exec_mode="+mode)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.Pool().QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pids[i]); err != nil {
			b.Fatal(err)
		}
		stores[i] = s
	}
	r := &store.Receiver{ID: uuid.New(), Name: "bench", CallbackURL: "https://example.com/cb", SigningSecret: "whsec_x"}
	if err := stores[0].CreateReceiver(ctx, r, store.HashAPIKey(uuid.NewString())); err != nil {
		b.Fatal(err)
	}
	ids, err := benchNotifications(ctx, stores[0], r, 40_000)
	if err != nil {
		b.Fatal(err)
	}
	// Batches as the worker makes them: each session its own notifications.
	const batch = 6
	half := len(ids) / 2
	b.Run("states", func(b *testing.B) {
		defer reportServerCPU(b, modes, pids)()
		for i := 0; b.Loop(); i++ {
			off := i * batch % (half - batch)
			for m, s := range stores {
				if _, err := s.DeliveryStates(ctx, ids[m*half+off:][:batch]); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("record", func(b *testing.B) {
		defer reportServerCPU(b, modes, pids)()
		recs := make([]store.AttemptRecord, batch)
		for i := 0; b.Loop(); i++ {
			off := i * batch % (half - batch)
			for m, s := range stores {
				for j := range recs {
					recs[j] = store.AttemptRecord{
						Attempt: store.Attempt{NotificationID: ids[m*half+off+j], AttemptNo: 1 + i*batch/(half-batch),
							StartedAt: time.Now(), Outcome: store.OutcomeFailure},
						NewStatus:     store.StatusPending,
						NextAttemptAt: time.Now().Add(time.Minute),
						HealthOf:      r.ID, // as the worker records: the receiver's run of failures is kept too
					}
				}
				if err := s.RecordAttempts(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// benchNotifications inserts n pending notifications of r and analyzes the
// tables, as autovacuum would.
func benchNotifications(ctx context.Context, s *store.Store, r *store.Receiver, n int) ([]uuid.UUID, error) {
	rows, _ := s.Pool().Query(ctx, `
		INSERT INTO notifications (id, receiver_id, event_type, idempotency_key, payload, max_attempts)
		SELECT gen_random_uuid(), $1, 't', 'k' || i, '{}', 30000 FROM generate_series(1, $2::int) i
		RETURNING id`, r.ID, n)
	ids := make([]uuid.UUID, 0, n)
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	_, err := s.Pool().Exec(ctx, `ANALYZE notifications; ANALYZE delivery_attempts`)
	return ids, err
}

// reportServerCPU reports, per mode, the CPU time its Postgres backend
// spent per operation. Unlike ns/op it counts neither waiting for a busy
// machine nor the WAL flush.
func reportServerCPU(b *testing.B, modes []string, pids []int) func() {
	read := func(pid int) time.Duration {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			b.Skipf("server CPU (is Postgres on this machine?): %v", err)
		}
		// utime and stime, in clock ticks of 10 ms, are the 12th and 13th
		// fields after the command name (which ends with ")").
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return time.Duration(u+s) * 10 * time.Millisecond
	}
	start := make([]time.Duration, len(pids))
	for i, pid := range pids {
		start[i] = read(pid)
	}
	return func() {
		for i, pid := range pids {
			b.ReportMetric(float64((read(pid)-start[i]).Microseconds())/float64(b.N), modes[i]+"-pg-µs/op")
		}
	}
}
