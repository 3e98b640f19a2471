package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/tasks"
	"github.com/notifyd/notifyd/notifier"
)

const eventType = "trade.paid"

// payload is a JSON object of the configured size, different per notification
// (like a payment result: order number, amount, buyer, time, a note).
func (b *bench) payload(i int) []byte {
	head := fmt.Sprintf(`{"order_id":"ORD-%010d","amount":%d,"currency":"CNY","status":"TRADE_SUCCESS","buyer_id":"2088%012d","paid_at":"2026-01-02T03:04:05Z","note":"`,
		i, 100+i%99900, i*7919%1_000_000_000_000)
	pad := b.cfg.payloadBytes - len(head) - 2
	if pad < 0 {
		pad = 0
	}
	buf := make([]byte, 0, len(head)+pad+2)
	buf = append(buf, head...)
	for j := range pad {
		buf = append(buf, 'a'+byte((i+j)%26))
	}
	return append(buf, '"', '}')
}

// target picks the receiver and idempotency key of notification i.
type target func(i int) (benchReceiver, string)

// enqueueAll sends n notifications through the Go client from the
// configured number of producer goroutines. onSent (optional) gets each
// notification's id and the time its Notify call started.
func (b *bench) enqueueAll(ctx context.Context, n int, pick target, onSent func(i int, id string, at time.Time)) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, b.cfg.producers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range b.cfg.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				r, key := pick(i)
				at := time.Now()
				id, err := b.client.Notify(ctx, notifier.Notification{
					ReceiverID: r.ID.String(), EventType: eventType, IdempotencyKey: key, Payload: b.payload(i),
				})
				if err != nil {
					errc <- fmt.Errorf("notify %d: %w", i, err)
					cancel()
					return
				}
				if onSent != nil {
					onSent(i, id, at)
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// paced sends total notifications at rate per second, each from its own
// goroutine at its planned time, so a slow call never delays the next one
// (no coordinated omission).
func (b *bench) paced(ctx context.Context, total, rate int, pick target, onSent func(i int, id string, at time.Time)) error {
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i := 0; i < total && ctx.Err() == nil && firstErr.Load() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, key := pick(i)
			at := time.Now()
			id, err := b.client.Notify(ctx, notifier.Notification{
				ReceiverID: r.ID.String(), EventType: eventType, IdempotencyKey: key, Payload: b.payload(i),
			})
			if err != nil {
				firstErr.CompareAndSwap(nil, fmt.Errorf("notify %d: %w", i, err))
				return
			}
			onSent(i, id, at)
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

func ids(rs []benchReceiver) []uuid.UUID {
	out := make([]uuid.UUID, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

type receiverStats struct {
	Requests  int64 `json:"requests"`
	Delivered int64 `json:"delivered"`
}

func (b *bench) receiverStats() (receiverStats, error) {
	var s receiverStats
	resp, err := b.http.Get(b.recvURL + "/_stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// deliveredCount counts delivered notifications of these receivers in
// Postgres.
func (b *bench) deliveredCount(ctx context.Context, receivers []uuid.UUID) (int, error) {
	var n int
	err := b.st.Pool().QueryRow(ctx, `SELECT count(*) FROM notifications WHERE receiver_id = ANY($1) AND status = 'delivered'`, receivers).Scan(&n)
	return n, err
}

// waitDelivered waits until want notifications of receivers are delivered
// in Postgres and returns when it saw that. Progress comes from the
// receiver's count (cheap); Postgres is polled every 10 ms once the receiver
// has answered them all, so the end time is the moment the last row became
// visible as delivered, to within the poll interval.
func (b *bench) waitDelivered(ctx context.Context, label string, receivers []uuid.UUID, base, want int, start time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := b.receiverStats()
		if err != nil {
			return time.Time{}, err
		}
		el := time.Since(start).Seconds()
		b.prog.update("%s: %s/%s delivered, %s", label, thousands(s.Delivered), thousands(int64(want)), fmtRate(float64(s.Delivered)/el))
		if s.Delivered >= int64(want) {
			break
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: only %d of %d answered by the receiver after %s", label, s.Delivered, want, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	for {
		n, err := b.deliveredCount(ctx, receivers)
		if err != nil {
			return time.Time{}, err
		}
		n -= base
		if n >= want {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: only %d of %d delivered in Postgres after %s", label, n, want, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// cause prefers the reason a context was cancelled with (a producer's
// error) over the plain "context canceled" it produced.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

// ---------------------------------------------------------------- 1 throughput

// ThroughputResult is scenario 1.
type ThroughputResult struct {
	N            int       `json:"n"`
	Seconds      float64   `json:"seconds"`
	PerSecond    float64   `json:"delivered_per_s"`
	EnqueueRate  float64   `json:"enqueue_per_s"`
	CPU          *CPUSplit `json:"cpu"`
	CPUPerNotifU float64   `json:"cpu_us_per_notification"`
	Profile      string    `json:"cpuprofile,omitempty"`
	// Batching is the worker's mean rows per statement when it starts
	// deliveries and records attempts.
	Batching map[string]float64 `json:"batching,omitempty"`
	// Runs holds every repetition's delivered/s (--repeat); the other
	// fields are those of the median run.
	Runs []float64 `json:"runs_per_s"`
}

func (b *bench) throughput(ctx context.Context) error {
	cfg := b.cfg
	var runs []*ThroughputResult
	for rep := range cfg.repeat {
		r, err := b.throughputRun(ctx, rep)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	r := median(runs, func(r *ThroughputResult) float64 { return r.PerSecond })
	for _, run := range runs {
		r.Runs = append(r.Runs, run.PerSecond)
	}
	b.res.Throughput = r
	met, text := verdict(r.PerSecond, targetThroughput, true)
	b.target("throughput", met, text)
	b.rows = append(b.rows,
		row{"1 throughput", fmt.Sprintf("%s delivered/s (%s in %.2f s, first enqueue → last delivered in PG)%s", strings.TrimSuffix(fmtRate(r.PerSecond), "/s"),
			thousands(int64(cfg.n)), r.Seconds, runsNote(r.Runs)), "≥ 8,000/s", text},
		row{"  cpu: % of a core (share)", r.CPU.String(), "", ""},
		row{"  cpu per notification", fmt.Sprintf("%.0f µs of CPU (notifyd+postgres+redis+receiver)", r.CPUPerNotifU), "", ""},
		row{"  batching", fmt.Sprintf("%.1f deliveries started and %.1f attempts recorded per statement (means)",
			r.Batching["begin_rows_per_statement"], r.Batching["record_rows_per_statement"]), "", ""},
	)
	return nil
}

// median returns the run with the median figure (the lower middle one for
// an even count).
func median[T any](runs []T, figure func(T) float64) T {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b T) int { return cmp.Compare(figure(a), figure(b)) })
	return sorted[(len(sorted)-1)/2]
}

func runsNote(rates []float64) string {
	if len(rates) < 2 {
		return ""
	}
	parts := make([]string, len(rates))
	for i, r := range rates {
		parts[i] = thousands(int64(math.Round(r)))
	}
	return "; median of " + strings.Join(parts, ", ")
}

func (b *bench) throughputRun(ctx context.Context, rep int) (*ThroughputResult, error) {
	cfg := b.cfg
	if err := b.resetQueue(ctx); err != nil {
		return nil, err
	}
	var extra []string
	if cfg.cpuprofile != "" && rep == 0 {
		extra = append(extra, "-cpuprofile", cfg.cpuprofile)
	}
	c, err := b.startChild(ctx, "notifyd", b.notifydArgs(b.dbURL, extra...)...)
	if err != nil {
		return nil, err
	}
	defer b.stopChild(c)
	rs := b.okReceivers
	// Earlier repetitions' notifications are delivered already.
	base, err := b.deliveredCount(ctx, ids(rs))
	if err != nil {
		return nil, err
	}
	label := "throughput"
	if cfg.repeat > 1 {
		label = fmt.Sprintf("throughput (run %d of %d)", rep+1, cfg.repeat)
	}
	before := b.sampler.snapshot()
	start := time.Now()
	var enqEnd time.Time
	enqErr := make(chan error, 1)
	wctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	go func() {
		err := b.enqueueAll(ctx, cfg.n, func(i int) (benchReceiver, string) {
			return rs[i%len(rs)], fmt.Sprintf("tp%d-%d", rep, i)
		}, nil)
		enqEnd = time.Now()
		if err != nil {
			fail(err)
		}
		enqErr <- err
	}()
	timeout := max(5*time.Minute, time.Duration(cfg.n/200)*time.Second)
	end, err := b.waitDelivered(wctx, label, ids(rs), base, cfg.n, start, timeout)
	if err != nil {
		return nil, cause(wctx, err)
	}
	after := b.sampler.snapshot()
	if err := <-enqErr; err != nil {
		return nil, err
	}
	b.stopChild(c)
	secs := end.Sub(start).Seconds()
	r := &ThroughputResult{N: cfg.n, Seconds: round(secs, 3), PerSecond: round(float64(cfg.n)/secs, 1),
		EnqueueRate: round(float64(cfg.n)/enqEnd.Sub(start).Seconds(), 1), CPU: cpuDelta(before, after), Profile: cfg.cpuprofile,
		Batching: c.stats}
	var total float64
	for _, k := range cpuOrder {
		if k != cpuBench {
			total += r.CPU.Seconds[k]
		}
	}
	r.CPUPerNotifU = round(total/float64(cfg.n)*1e6, 1)
	b.prog.done("%s: %s delivered in %.2f s: %s", label, thousands(int64(cfg.n)), secs, fmtRate(r.PerSecond))
	return r, nil
}

// ---------------------------------------------------------------- 7 storage

// StorageResult is scenario 7, measured right after the throughput run.
type StorageResult struct {
	Delivered          int64   `json:"delivered"`
	NotificationsTable int64   `json:"notifications_table_bytes"`
	NotificationsIndex int64   `json:"notifications_index_bytes"`
	AttemptsTable      int64   `json:"attempts_table_bytes"`
	AttemptsIndex      int64   `json:"attempts_index_bytes"`
	PayloadBytes       int64   `json:"payload_bytes"`
	BytesPerNotif      float64 `json:"bytes_per_notification_excl_payload"`
}

func (b *bench) storage(ctx context.Context) error {
	r := &StorageResult{}
	err := b.st.Pool().QueryRow(ctx, `
		SELECT (SELECT count(*) FROM notifications WHERE status = 'delivered'),
			pg_table_size('notifications'), pg_indexes_size('notifications'),
			pg_table_size('delivery_attempts'), pg_indexes_size('delivery_attempts'),
			(SELECT coalesce(sum(octet_length(payload)), 0) FROM notifications)`).
		Scan(&r.Delivered, &r.NotificationsTable, &r.NotificationsIndex, &r.AttemptsTable, &r.AttemptsIndex, &r.PayloadBytes)
	if err != nil {
		return err
	}
	if r.Delivered == 0 {
		return errors.New("no delivered notifications to measure")
	}
	total := r.NotificationsTable + r.NotificationsIndex + r.AttemptsTable + r.AttemptsIndex - r.PayloadBytes
	r.BytesPerNotif = round(float64(total)/float64(r.Delivered), 1)
	b.res.Storage = r
	met, text := verdict(r.BytesPerNotif, targetStorageBytes, false)
	b.target("storage", met, text)
	per := func(v int64) float64 { return float64(v) / float64(r.Delivered) }
	b.rows = append(b.rows,
		row{"7 storage", fmt.Sprintf("%.0f B per delivered notification excl. payload (tables+indexes, no VACUUM)", r.BytesPerNotif), "≤ 1,024 B", text},
		row{"  breakdown", fmt.Sprintf("notifications %.0f + indexes %.0f, attempts %.0f + index %.0f, minus payload %.0f B",
			per(r.NotificationsTable), per(r.NotificationsIndex), per(r.AttemptsTable), per(r.AttemptsIndex), per(r.PayloadBytes)), "", ""},
	)
	return nil
}

// ---------------------------------------------------------------- 2 ceiling

// CeilingResult is scenario 2: the same N as no-op tasks.
type CeilingResult struct {
	N         int       `json:"n"`
	Seconds   float64   `json:"seconds"`
	PerSecond float64   `json:"processed_per_s"`
	Ratio     *float64  `json:"notifyd_ratio"` // throughput / ceiling
	CPU       *CPUSplit `json:"cpu"`
	// OneQueue is the same run with the consumer on a single queue instead
	// of notifyd's three weighted ones: Asynq's fetch loop makes one Redis
	// round trip per queue it tries, and the manual and retry queues are
	// usually empty, so the layout itself costs part of the ceiling.
	OneQueuePerSecond float64 `json:"one_queue_processed_per_s"`
	// Every repetition (--repeat); the figures above are the medians.
	Runs         []float64 `json:"runs_per_s"`
	OneQueueRuns []float64 `json:"one_queue_runs_per_s"`
}

func (b *bench) ceiling(ctx context.Context) error {
	cfg := b.cfg
	type noop struct {
		secs  float64
		split *CPUSplit
	}
	var runs, oneRuns []noop
	var rates, oneRates []float64
	for rep := range cfg.repeat {
		label, oneLabel := "ceiling", "ceiling, one queue"
		if cfg.repeat > 1 {
			label = fmt.Sprintf("ceiling (run %d of %d)", rep+1, cfg.repeat)
			oneLabel = fmt.Sprintf("ceiling, one queue (run %d of %d)", rep+1, cfg.repeat)
		}
		secs, split, err := b.noopRun(ctx, label, "notifyd")
		if err != nil {
			return err
		}
		runs, rates = append(runs, noop{secs, split}), append(rates, round(float64(cfg.n)/secs, 1))
		b.prog.done("%s: %s no-op tasks in %.2f s: %s", label, thousands(int64(cfg.n)), secs, fmtRate(float64(cfg.n)/secs))
		one, _, err := b.noopRun(ctx, oneLabel, "single")
		if err != nil {
			return err
		}
		oneRuns, oneRates = append(oneRuns, noop{secs: one}), append(oneRates, round(float64(cfg.n)/one, 1))
		b.prog.done("%s: %s no-op tasks in %.2f s: %s", oneLabel, thousands(int64(cfg.n)), one, fmtRate(float64(cfg.n)/one))
	}
	// The median run is the one with the median time.
	m := median(runs, func(r noop) float64 { return r.secs })
	one := median(oneRuns, func(r noop) float64 { return r.secs })
	r := &CeilingResult{N: cfg.n, Seconds: round(m.secs, 3), PerSecond: round(float64(cfg.n)/m.secs, 1), CPU: m.split,
		OneQueuePerSecond: round(float64(cfg.n)/one.secs, 1), Runs: rates, OneQueueRuns: oneRates}
	figure := fmt.Sprintf("%s no-op Asynq tasks/s (same N, concurrency %d, notifyd's queues)%s", strings.TrimSuffix(fmtRate(r.PerSecond), "/s"), cfg.concurrency, runsNote(rates))
	if tp := b.res.Throughput; tp != nil {
		ratio := round(tp.PerSecond/r.PerSecond, 3)
		r.Ratio = &ratio
		met, text := verdict(ratio, targetCeilingRatio, true)
		b.target("ceiling_ratio", met, text)
		b.rows = append(b.rows, row{"2 ceiling", figure + fmt.Sprintf("; notifyd = %.0f%% of it", ratio*100), "≥ 50 %", text})
	} else {
		b.rows = append(b.rows, row{"2 ceiling", figure, "≥ 50 % (needs throughput)", "-"})
	}
	b.rows = append(b.rows,
		row{"  cpu: % of a core (share)", strings.Replace(r.CPU.String(), "notifyd", "no-op consumer", 1), "", ""},
		row{"  one queue", fmt.Sprintf("%s no-op tasks/s with a single queue (what notifyd's queue layout costs)%s", strings.TrimSuffix(fmtRate(r.OneQueuePerSecond), "/s"), runsNote(oneRates)), "", ""},
	)
	b.res.Ceiling = r
	return nil
}

// noopRun enqueues N tasks exactly as the Go client does while a no-op
// consumer with the worker's Asynq settings processes them; it returns the
// seconds from the first enqueue to the last task processed.
func (b *bench) noopRun(ctx context.Context, label, queues string) (float64, *CPUSplit, error) {
	cfg := b.cfg
	if err := b.resetQueue(ctx); err != nil {
		return 0, nil, err
	}
	c, err := b.startChild(ctx, "noop", "-redis-addr", cfg.redisAddr, "-redis-db", fmt.Sprint(cfg.redisDB),
		"-concurrency", fmt.Sprint(cfg.concurrency), "-queues", queues)
	if err != nil {
		return 0, nil, err
	}
	defer b.stopChild(c)
	rs := b.okReceivers
	before := b.sampler.snapshot()
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var enqErr atomic.Value
	defer wg.Wait()
	for range cfg.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.n || ctx.Err() != nil || enqErr.Load() != nil {
					return
				}
				// Exactly the task the Go client enqueues for a notification.
				r, key := rs[i%len(rs)], "ceil-"+strconv.Itoa(i)
				d := tasks.Deliver{ID: tasks.NotificationID(r.ID, key), ReceiverID: r.ID, EventType: eventType,
					IdempotencyKey: key, Payload: b.payload(i), EnqueuedAt: time.Now().UTC(), Attempt: 1}
				t, err := d.Task()
				if err == nil {
					_, err = b.queue.EnqueueContext(ctx, t)
				}
				if err != nil {
					enqErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(max(5*time.Minute, time.Duration(cfg.n/200)*time.Second))
	for {
		var s struct {
			Processed int64 `json:"processed"`
			LastNS    int64 `json:"last_ns"`
		}
		resp, err := b.http.Get(c.ready["stats"])
		if err != nil {
			return 0, nil, err
		}
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil {
			return 0, nil, err
		}
		b.prog.update("%s: %s/%s no-op tasks processed, %s", label, thousands(s.Processed), thousands(int64(cfg.n)), fmtRate(float64(s.Processed)/time.Since(start).Seconds()))
		if s.Processed >= int64(cfg.n) {
			return time.Unix(0, s.LastNS).Sub(start).Seconds(), cpuDelta(before, b.sampler.snapshot()), nil
		}
		if err, _ := enqErr.Load().(error); err != nil {
			return 0, nil, fmt.Errorf("enqueue: %w", err)
		}
		if time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("only %d of %d no-op tasks processed", s.Processed, cfg.n)
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------- 3 latency

// LatencyResult is scenario 3.
type LatencyResult struct {
	OfferedRate  int     `json:"offered_per_s"`
	AchievedRate float64 `json:"achieved_per_s"`
	Sent         int     `json:"sent"`
	// Enqueue (the Notify call starting) → the attempt's started_at as the
	// worker recorded it in delivery_attempts.
	FirstAttempt Dist `json:"enqueue_to_first_attempt_start"`
	// Enqueue → the receiver's handler running (request headers read).
	ReceiverGot Dist `json:"enqueue_to_receiver_got_request"`
	// Enqueue → the bench seeing status delivered in Postgres (polled
	// every 5 ms: includes up to 5 ms of poll delay).
	DeliveredVisible Dist `json:"enqueue_to_delivered_visible"`
}

// steadyRun is the shared part of the latency and isolation steady runs.
type steadyRun struct {
	enq      map[string]time.Time // id → enqueue time
	visible  map[string]time.Time // id → seen delivered in Postgres
	receiver map[string]time.Time // id → receiver got attempt 1
	first    map[string]time.Time // id → attempt 1 started_at
	sent     int
	elapsed  time.Duration
}

// steady offers rate/s for the configured duration to receivers picked by
// pick and waits until those for which healthy(i) holds are delivered.
func (b *bench) steady(ctx context.Context, label string, pick target, healthy func(i int) bool, timeout time.Duration) (*steadyRun, error) {
	cfg := b.cfg
	total := int(float64(cfg.rate) * cfg.duration.Seconds())
	run := &steadyRun{enq: map[string]time.Time{}, visible: map[string]time.Time{}, receiver: map[string]time.Time{}, first: map[string]time.Time{}}
	var mu sync.Mutex
	pending := map[string]bool{}
	var want int
	for i := range total {
		if healthy(i) {
			want++
		}
	}
	start := time.Now()
	sendDone := make(chan error, 1)
	go func() {
		sendDone <- b.paced(ctx, total, cfg.rate, pick, func(i int, id string, at time.Time) {
			if !healthy(i) {
				return
			}
			mu.Lock()
			run.enq[id] = at
			pending[id] = true
			mu.Unlock()
		})
	}()
	deadline := time.Now().Add(cfg.duration + timeout)
	sending := true
	idsBuf := make([]uuid.UUID, 0, 1024)
	for {
		if sending {
			select {
			case err := <-sendDone:
				if err != nil {
					return nil, err
				}
				sending = false
				run.elapsed = time.Since(start)
			default:
			}
		}
		mu.Lock()
		idsBuf = idsBuf[:0]
		for id := range pending {
			idsBuf = append(idsBuf, uuid.MustParse(id))
		}
		mu.Unlock()
		if len(idsBuf) > 0 {
			rows, err := b.st.Pool().Query(ctx, `SELECT id FROM notifications WHERE id = ANY($1) AND status = 'delivered'`, idsBuf)
			if err != nil {
				return nil, err
			}
			now := time.Now()
			var id uuid.UUID
			mu.Lock()
			for rows.Next() {
				if err := rows.Scan(&id); err == nil {
					run.visible[id.String()] = now
					delete(pending, id.String())
				}
			}
			mu.Unlock()
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
		}
		mu.Lock()
		sent, done, left := len(run.enq), len(run.visible), len(pending)
		mu.Unlock()
		b.prog.update("%s: %.1f/%.0f s, %s healthy sent, %s delivered, %d in flight", label, min(time.Since(start), cfg.duration).Seconds(),
			cfg.duration.Seconds(), thousands(int64(sent)), thousands(int64(done)), left)
		if !sending && done >= want {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %d of %d healthy notifications delivered before the deadline", label, done, want)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(5 * time.Millisecond)
	}
	run.sent = total
	// Attempt 1 start as recorded by the worker.
	all := make([]uuid.UUID, 0, len(run.enq))
	for id := range run.enq {
		all = append(all, uuid.MustParse(id))
	}
	rows, err := b.st.Pool().Query(ctx, `SELECT notification_id, started_at FROM delivery_attempts WHERE notification_id = ANY($1) AND attempt_no = 1`, all)
	if err != nil {
		return nil, err
	}
	var id uuid.UUID
	var at time.Time
	for rows.Next() {
		if err := rows.Scan(&id, &at); err != nil {
			rows.Close()
			return nil, err
		}
		run.first[id.String()] = at
	}
	rows.Close()
	// When the receiver got attempt 1.
	resp, err := b.http.Get(b.recvURL + "/_dump")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[1] != "1" {
			continue
		}
		ns, _ := strconv.ParseInt(f[2], 10, 64)
		if _, ok := run.enq[f[0]]; ok {
			if prev, seen := run.receiver[f[0]]; !seen || time.Unix(0, ns).Before(prev) {
				run.receiver[f[0]] = time.Unix(0, ns)
			}
		}
	}
	return run, sc.Err()
}

func since(enq, at map[string]time.Time) []time.Duration {
	out := make([]time.Duration, 0, len(at))
	for id, t := range at {
		if e, ok := enq[id]; ok {
			out = append(out, t.Sub(e))
		}
	}
	return out
}

func (b *bench) latency(ctx context.Context) error {
	cfg := b.cfg
	if err := b.resetQueue(ctx); err != nil {
		return err
	}
	c, err := b.startChild(ctx, "notifyd", b.notifydArgs(b.dbURL)...)
	if err != nil {
		return err
	}
	defer b.stopChild(c)
	rs := b.okReceivers
	run, err := b.steady(ctx, "latency", func(i int) (benchReceiver, string) {
		return rs[i%len(rs)], "lat-" + strconv.Itoa(i)
	}, func(int) bool { return true }, 2*time.Minute)
	if err != nil {
		return err
	}
	r := &LatencyResult{
		OfferedRate: cfg.rate, Sent: run.sent, AchievedRate: round(float64(run.sent)/run.elapsed.Seconds(), 1),
		FirstAttempt:     distOf(since(run.enq, run.first)),
		ReceiverGot:      distOf(since(run.enq, run.receiver)),
		DeliveredVisible: distOf(since(run.enq, run.visible)),
	}
	b.res.Latency = r
	b.prog.done("latency: %d sent at %.0f/s; enqueue → first attempt %s", r.Sent, r.AchievedRate, r.FirstAttempt)
	met, text := verdict(r.FirstAttempt.P99, targetFirstP99MS, false)
	b.target("latency_first_attempt_p99", met, text)
	b.rows = append(b.rows,
		row{"3 latency", fmt.Sprintf("enqueue → first attempt start (worker's started_at): %s, at %.0f/s for %s", r.FirstAttempt, r.AchievedRate, cfg.duration), "p99 ≤ 50 ms", text},
		row{"", "enqueue → receiver got the request: " + r.ReceiverGot.String(), "", ""},
		row{"", "enqueue → delivered visible in Postgres (5 ms polls): " + r.DeliveredVisible.String(), "", ""},
	)
	return nil
}

// ---------------------------------------------------------------- 4 retry

// RetryResult is scenario 4: actual minus planned start of each retry.
type RetryResult struct {
	Notifications int       `json:"notifications"`
	Retries       int       `json:"retries"`
	Intervals     []string  `json:"intervals"`
	MeanMS        float64   `json:"mean_error_ms"`
	MinMS         float64   `json:"min_error_ms"`
	MaxMS         float64   `json:"max_error_ms"`
	MaxAbsMS      float64   `json:"max_abs_error_ms"`
	P99AbsMS      float64   `json:"p99_abs_error_ms"`
	PerRetry      []float64 `json:"mean_error_ms_by_retry"`
}

func (b *bench) retry(ctx context.Context) error {
	cfg := b.cfg
	if err := b.resetQueue(ctx); err != nil {
		return err
	}
	c, err := b.startChild(ctx, "notifyd", b.notifydArgs(b.dbURL)...)
	if err != nil {
		return err
	}
	defer b.stopChild(c)
	rs := b.failReceivers
	start := time.Now()
	if err := b.enqueueAll(ctx, cfg.retryN, func(i int) (benchReceiver, string) {
		return rs[i%len(rs)], "rt-" + strconv.Itoa(i)
	}, nil); err != nil {
		return err
	}
	var schedule time.Duration
	for _, d := range cfg.retryIntervals {
		schedule += d
	}
	if _, err := b.waitDelivered(ctx, "retry", ids(rs), 0, cfg.retryN, start, 3*schedule+2*time.Minute); err != nil {
		return err
	}
	b.stopChild(c)
	rows, err := b.st.Pool().Query(ctx, `
		SELECT a.notification_id, a.attempt_no, a.started_at, a.duration_ms
		FROM delivery_attempts a JOIN notifications n ON n.id = a.notification_id
		WHERE n.receiver_id = ANY($1) AND a.attempt_no > 0
		ORDER BY a.notification_id, a.attempt_no`, ids(rs))
	if err != nil {
		return err
	}
	defer rows.Close()
	type att struct {
		id      uuid.UUID
		no      int16
		started time.Time
		ms      int32
	}
	var prev att
	var errs []time.Duration
	byRetry := make([][]time.Duration, len(cfg.retryIntervals))
	for rows.Next() {
		var a att
		if err := rows.Scan(&a.id, &a.no, &a.started, &a.ms); err != nil {
			return err
		}
		if a.id == prev.id && a.no == prev.no+1 && int(prev.no) <= len(cfg.retryIntervals) {
			// What the worker planned after attempt prev: its start plus
			// its duration plus the interval (no jitter with explicit
			// intervals). duration_ms is stored truncated to the
			// millisecond, so the plan is reconstructed up to 1 ms early.
			planned := prev.started.Add(time.Duration(prev.ms)*time.Millisecond + cfg.retryIntervals[prev.no-1])
			e := a.started.Sub(planned)
			errs = append(errs, e)
			byRetry[prev.no-1] = append(byRetry[prev.no-1], e)
		}
		prev = a
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(errs) == 0 {
		return errors.New("no retries on record")
	}
	r := &RetryResult{Notifications: cfg.retryN, Retries: len(errs), Intervals: durStrings(cfg.retryIntervals)}
	var sum time.Duration
	minE, maxE := errs[0], errs[0]
	abs := make([]time.Duration, len(errs))
	for i, e := range errs {
		sum += e
		minE, maxE = min(minE, e), max(maxE, e)
		abs[i] = max(e, -e)
	}
	r.MeanMS, r.MinMS, r.MaxMS = ms(sum/time.Duration(len(errs))), ms(minE), ms(maxE)
	absDist := distOf(abs)
	r.MaxAbsMS, r.P99AbsMS = absDist.Max, absDist.P99
	for _, es := range byRetry {
		var s time.Duration
		for _, e := range es {
			s += e
		}
		if len(es) > 0 {
			r.PerRetry = append(r.PerRetry, ms(s/time.Duration(len(es))))
		}
	}
	b.res.Retry = r
	b.prog.done("retry: %d retries, error mean %s, max |error| %s", r.Retries, fmtMS(r.MeanMS), fmtMS(r.MaxAbsMS))
	met, text := verdict(r.MaxAbsMS, targetRetryErrMS, false)
	b.target("retry_error", met, text)
	b.rows = append(b.rows, row{"4 retry precision",
		fmt.Sprintf("actual − planned start over %d retries (%s): mean %s, min %s, max %s, p99 |err| %s", r.Retries, strings.Join(r.Intervals, ","),
			fmtMS(r.MeanMS), fmtMS(r.MinMS), fmtMS(r.MaxMS), fmtMS(r.P99AbsMS)),
		"|error| ≤ 1 s", text})
	return nil
}

// ---------------------------------------------------------------- 5 isolation

// IsolationResult is scenario 5: 30 % of receivers hang until their timeout.
type IsolationResult struct {
	Receivers      int     `json:"receivers"`
	Hanging        int     `json:"hanging"`
	HangTimeoutS   float64 `json:"hang_timeout_s"`
	BurstN         int     `json:"burst_n"`
	HealthyN       int     `json:"burst_healthy_n"`
	HealthySeconds float64 `json:"burst_healthy_seconds"`
	HealthyRate    float64 `json:"healthy_delivered_per_s"`
	// BurstDeferred counts the burst's deliveries deferred without an
	// attempt, by reason (what isolation cost the queue).
	BurstDeferred map[string]float64 `json:"burst_deferred,omitempty"`
	BurstCPU      *CPUSplit          `json:"burst_cpu,omitempty"`
	// ThroughputRatio is HealthyRate over scenario 1's delivered/s.
	ThroughputRatio *float64 `json:"throughput_ratio"`
	// Steady run: the latency scenario's rate with 30 % going to hanging
	// receivers; enqueue → first attempt start of the healthy ones.
	SteadyFirstAttempt Dist     `json:"steady_healthy_enqueue_to_first_attempt"`
	P99Ratio           *float64 `json:"p99_ratio"` // over scenario 3's p99
}

func (b *bench) isolation(ctx context.Context) error {
	cfg := b.cfg
	rs := b.isoReceivers
	hang := func(i int) bool { return i%len(rs) < b.hangCount }
	healthyIDs := ids(rs[b.hangCount:])
	r := &IsolationResult{Receivers: len(rs), Hanging: b.hangCount, HangTimeoutS: cfg.hangTimeout.Seconds(), BurstN: cfg.isoN}
	for i := range cfg.isoN {
		if !hang(i) {
			r.HealthyN++
		}
	}
	// Slots a hanging notification holds: every hanging first attempt takes
	// a worker slot for the whole timeout.
	hangWork := time.Duration(cfg.isoN-r.HealthyN) * cfg.hangTimeout / time.Duration(cfg.concurrency)

	// A: burst, as in scenario 1.
	if err := b.resetQueue(ctx); err != nil {
		return err
	}
	c, err := b.startChild(ctx, "notifyd", b.notifydArgs(b.dbURL)...)
	if err != nil {
		return err
	}
	defer b.stopChild(c)
	before := b.sampler.snapshot()
	start := time.Now()
	enqErr := make(chan error, 1)
	wctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	go func() {
		err := b.enqueueAll(ctx, cfg.isoN, func(i int) (benchReceiver, string) {
			return rs[i%len(rs)], "iso-" + strconv.Itoa(i)
		}, nil)
		if err != nil {
			fail(err)
		}
		enqErr <- err
	}()
	end, err := b.waitDelivered(wctx, "isolation burst", healthyIDs, 0, r.HealthyN, start, 3*hangWork+3*time.Minute)
	if err != nil {
		return cause(wctx, err)
	}
	r.BurstCPU = cpuDelta(before, b.sampler.snapshot())
	if err := <-enqErr; err != nil {
		return err
	}
	b.stopChild(c)
	r.BurstDeferred = map[string]float64{}
	for k, v := range c.stats {
		if reason, ok := strings.CutPrefix(k, "deferred_"); ok {
			r.BurstDeferred[reason] = v
		}
	}
	r.HealthySeconds = round(end.Sub(start).Seconds(), 3)
	r.HealthyRate = round(float64(r.HealthyN)/end.Sub(start).Seconds(), 1)
	b.prog.done("isolation burst: %s healthy delivered in %.2f s: %s", thousands(int64(r.HealthyN)), r.HealthySeconds, fmtRate(r.HealthyRate))

	// B: steady rate.
	if err := b.resetQueue(ctx); err != nil {
		return err
	}
	c, err = b.startChild(ctx, "notifyd", b.notifydArgs(b.dbURL)...)
	if err != nil {
		return err
	}
	defer b.stopChild(c)
	steadyHang := time.Duration(float64(cfg.rate)*cfg.duration.Seconds()*float64(b.hangCount)/float64(len(rs))) * cfg.hangTimeout / time.Duration(cfg.concurrency)
	run, err := b.steady(ctx, "isolation steady", func(i int) (benchReceiver, string) {
		return rs[i%len(rs)], "isos-" + strconv.Itoa(i)
	}, func(i int) bool { return !hang(i) }, 3*steadyHang+3*time.Minute)
	if err != nil {
		return err
	}
	b.stopChild(c)
	r.SteadyFirstAttempt = distOf(since(run.enq, run.first))
	b.prog.done("isolation steady: healthy enqueue → first attempt %s", r.SteadyFirstAttempt)

	b.res.Isolation = r
	figure := fmt.Sprintf("%d of %d receivers hang (%s timeout): healthy %s delivered/s", r.Hanging, r.Receivers, cfg.hangTimeout, strings.TrimSuffix(fmtRate(r.HealthyRate), "/s"))
	if tp := b.res.Throughput; tp != nil {
		ratio := round(r.HealthyRate/tp.PerSecond, 3)
		r.ThroughputRatio = &ratio
		met, text := verdict(ratio, targetIsolation, true)
		b.target("isolation_throughput", met, text)
		b.rows = append(b.rows, row{"5 isolation", figure + fmt.Sprintf(" = %.1f%% of scenario 1", ratio*100), "≥ 80 %", text})
	} else {
		b.rows = append(b.rows, row{"5 isolation", figure, "≥ 80 % (needs throughput)", "-"})
	}
	lat := "healthy enqueue → first attempt at " + strconv.Itoa(cfg.rate) + "/s: " + r.SteadyFirstAttempt.String()
	if l := b.res.Latency; l != nil && l.FirstAttempt.P99 > 0 {
		ratio := round(r.SteadyFirstAttempt.P99/l.FirstAttempt.P99, 2)
		r.P99Ratio = &ratio
		lat += fmt.Sprintf(" (p99 %.1f× scenario 3)", ratio)
	}
	b.rows = append(b.rows, row{"", lat, "", ""})
	b.rows = append(b.rows, row{"", fmt.Sprintf("burst deferrals without an attempt: %.0f receiver busy, %.0f circuit open",
		r.BurstDeferred["receiver_busy"], r.BurstDeferred["circuit_open"]), "", ""})
	b.rows = append(b.rows, row{"  burst cpu", r.BurstCPU.String(), "", ""})
	if math.IsNaN(r.HealthyRate) {
		return errors.New("no healthy deliveries")
	}
	return nil
}
