package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/notifyd/notifyd/internal/partition"
	"github.com/notifyd/notifyd/internal/tasks"
)

// generate fills the query database with COPY: indexes and constraints
// are dropped first and rebuilt afterwards (far faster than maintaining
// them row by row), then the tables are vacuumed and analysed.
func (b *bench) generate(ctx context.Context, dbURL string, receivers []benchReceiver) (*queryData, error) {
	cfg := b.cfg
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	defs, err := dropKeys(ctx, conn)
	if err != nil {
		return nil, err
	}
	to := time.Now().Add(-time.Hour).Truncate(time.Second)
	data := &queryData{receivers: receivers, rows: int64(cfg.queryRows), from: to.Add(-historyWindow), to: to}
	g := &generator{b: b, dbURL: dbURL, data: data, step: historyWindow / time.Duration(cfg.queryRows), now: time.Now(), start: time.Now()}
	// The window's daily partitions, as the retention job would have made
	// them day by day (the claim trigger fills notification_keys as COPY
	// goes).
	sqlDB := stdlib.OpenDB(*conn.Config())
	_, err = partition.Ensure(ctx, sqlDB, data.from, time.Now())
	sqlDB.Close()
	if err != nil {
		return nil, err
	}
	if err := g.copy(ctx, "notifications", notificationColumns, g.notificationRows); err != nil {
		return nil, err
	}
	if err := g.copy(ctx, "delivery_attempts", attemptColumns, g.attemptRows); err != nil {
		return nil, err
	}
	b.prog.done("query: copied %s notifications and their attempts in %.0f s", thousands(int64(cfg.queryRows)), time.Since(g.start).Seconds())
	if err := restoreKeys(ctx, conn, defs, b.prog); err != nil {
		return nil, err
	}
	// Postgres here runs with autovacuum off, and notifyd's plans rest on
	// real statistics (it does not force index scans): without this the
	// API would be measured on plans made for empty tables. receivers is
	// included for the same reason: its rows were inserted just before.
	b.prog.update("query: VACUUM ANALYZE")
	for _, t := range []string{"notifications", "delivery_attempts", "receivers"} {
		if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) `+t); err != nil {
			return nil, fmt.Errorf("vacuum analyze %s: %w", t, err)
		}
	}
	b.prog.done("query: %s rows ready after %.0f s", thousands(int64(cfg.queryRows)), time.Since(g.start).Seconds())
	return data, nil
}

// generator makes the query run's rows: notification i belongs to receiver
// i mod receivers, its created_at steps evenly over the history window.
type generator struct {
	b          *bench
	dbURL      string
	data       *queryData
	step       time.Duration
	now, start time.Time
	done       atomic.Int64 // notifications generated, for progress
}

// copyStreams is how many COPY connections load a table at once.
const copyStreams = 2

// copy loads table with the rows rowsOf emits for each notification i, over
// copyStreams connections, each taking every copyStreams-th notification.
func (g *generator) copy(ctx context.Context, table string, columns []string, rowsOf func(i int, emit func([]any))) error {
	g.done.Store(0)
	var wg sync.WaitGroup
	errc := make(chan error, copyStreams)
	for s := range copyStreams {
		wg.Go(func() {
			if err := g.copyStream(ctx, table, columns, s, rowsOf); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func (g *generator) copyStream(ctx context.Context, table string, columns []string, first int, rowsOf func(i int, emit func([]any))) error {
	total := g.b.cfg.queryRows
	c, err := connect(ctx, g.dbURL)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if err := registerEnums(ctx, c); err != nil {
		return err
	}
	i := first
	var buf [][]any
	src := pgx.CopyFromFunc(func() ([]any, error) {
		for len(buf) == 0 {
			if i >= total {
				return nil, nil
			}
			rowsOf(i, func(v []any) { buf = append(buf, v) })
			i += copyStreams
			if n := g.done.Add(1); n%50000 == 0 {
				el := time.Since(g.start).Seconds()
				g.b.prog.update("query: generating %s: %s/%s notifications (%s)", table, thousands(n), thousands(int64(total)), fmtRate(float64(n)/el))
			}
		}
		v := buf[0]
		buf = buf[1:]
		return v, nil
	})
	if _, err := c.CopyFrom(ctx, pgx.Identifier{table}, columns, src); err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	return nil
}

// notification gives notification i's receiver, key, id, created_at and
// kind (0-99: which outcome it had).
func (g *generator) notification(i int) (rc benchReceiver, key string, id uuid.UUID, created time.Time, kind int) {
	rs := g.data.receivers
	rc = rs[i%len(rs)]
	key = "q-" + strconv.Itoa(i/len(rs))
	return rc, key, tasks.NotificationID(rc.ID, key), g.data.from.Add(time.Duration(i) * g.step), i % 100
}

var notificationColumns = []string{"id", "receiver_id", "event_type", "idempotency_key", "payload", "status", "attempts",
	"max_attempts", "created_at", "next_attempt_at", "last_attempt_at", "delivered_at", "last_status_code", "last_error"}

func (g *generator) notificationRows(i int, emit func([]any)) {
	rc, key, id, created, kind := g.notification(i)
	last := created.Add(20 * time.Millisecond)
	payload := g.b.payload(i)
	switch {
	case kind < 97: // delivered at the first attempt
		emit([]any{id, rc.ID, eventType, key, payload, "delivered", int16(1), int16(12), created, nil, last, last.Add(5 * time.Millisecond), int16(200), nil})
	case kind < 99: // failed after 3 attempts
		emit([]any{id, rc.ID, eventType, key, payload, "failed", int16(3), int16(3), created, nil, last.Add(time.Hour), nil, int16(500), "HTTP 500"})
	default: // pending, retry due in an hour
		emit([]any{id, rc.ID, eventType, key, payload, "pending", int16(1), int16(12), created, g.now.Add(time.Hour), last, nil, int16(500), "HTTP 500"})
	}
}

var attemptColumns = []string{"notification_id", "attempt_no", "started_at", "duration_ms", "status_code", "outcome", "error", "response_body",
	"notification_created_at"}

func (g *generator) attemptRows(i int, emit func([]any)) {
	_, _, id, created, kind := g.notification(i)
	at := created.Add(20 * time.Millisecond)
	switch {
	case kind < 97:
		emit([]any{id, int16(1), at, int32(5), int16(200), "success", nil, "ok", created})
	case kind < 99:
		for a := range 3 {
			emit([]any{id, int16(a + 1), at.Add(time.Duration(a) * 30 * time.Minute), int32(8), int16(500), "failure", "HTTP 500", "oops", created})
		}
	default:
		emit([]any{id, int16(1), at, int32(8), int16(500), "failure", "HTTP 500", "oops", created})
	}
}

func registerEnums(ctx context.Context, c *pgx.Conn) error {
	for _, name := range []string{"notification_status", "attempt_outcome"} {
		t, err := c.LoadType(ctx, name)
		if err != nil {
			return fmt.Errorf("load type %s: %w", name, err)
		}
		c.TypeMap().RegisterType(t)
	}
	return nil
}
