package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

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
	w := &visibility{run: run, pending: map[string]bool{}}
	var want int
	for i := range total {
		if healthy(i) {
			want++
		}
	}
	start := time.Now()
	p := startProducers(ctx, func(ctx context.Context) error {
		return b.paced(ctx, total, cfg.rate, pick, func(i int, id string, at time.Time) {
			if healthy(i) {
				w.sent(id, at)
			}
		})
	})
	defer p.stop()
	sending := true
	var done int
	err := poll(ctx, 5*time.Millisecond, time.Now().Add(cfg.duration+timeout), func() (bool, error) {
		select {
		case <-p.done:
			if p.err != nil {
				return false, p.err
			}
			if sending {
				sending = false
				run.elapsed = time.Since(start)
			}
		default:
		}
		if err := w.poll(ctx, b.st.Pool()); err != nil {
			return false, err
		}
		sent, visible, left := w.counts()
		done = visible
		b.prog.update("%s: %.1f/%.0f s, %s healthy sent, %s delivered, %d in flight", label, min(time.Since(start), cfg.duration).Seconds(),
			cfg.duration.Seconds(), thousands(int64(sent)), thousands(int64(done)), left)
		return !sending && done >= want, nil
	}, func() error {
		return fmt.Errorf("%s: %d of %d healthy notifications delivered before the deadline", label, done, want)
	})
	if err != nil {
		return nil, err
	}
	run.sent = total
	if err := b.firstAttempts(ctx, run); err != nil {
		return nil, err
	}
	return run, b.receiverTimes(run)
}

// visibility tracks which sent notifications are seen delivered in
// Postgres, while the sender adds more.
type visibility struct {
	mu      sync.Mutex
	run     *steadyRun
	pending map[string]bool
	ids     []uuid.UUID // reused for every poll
}

func (w *visibility) sent(id string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.run.enq[id] = at
	w.pending[id] = true
}

func (w *visibility) counts() (sent, visible, pending int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.run.enq), len(w.run.visible), len(w.pending)
}

// poll marks the pending notifications now delivered as visible now.
func (w *visibility) poll(ctx context.Context, db *pgxpool.Pool) error {
	w.mu.Lock()
	w.ids = w.ids[:0]
	for id := range w.pending {
		w.ids = append(w.ids, uuid.MustParse(id))
	}
	w.mu.Unlock()
	if len(w.ids) == 0 {
		return nil
	}
	rows, err := db.Query(ctx, `SELECT id FROM notifications WHERE id = ANY($1) AND status = 'delivered'`, w.ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	now := time.Now()
	var id uuid.UUID
	w.mu.Lock()
	defer w.mu.Unlock()
	for rows.Next() {
		if err := rows.Scan(&id); err == nil {
			w.run.visible[id.String()] = now
			delete(w.pending, id.String())
		}
	}
	return rows.Err()
}

// firstAttempts reads when attempt 1 of each sent notification started, as
// the worker recorded it.
func (b *bench) firstAttempts(ctx context.Context, run *steadyRun) error {
	all := make([]uuid.UUID, 0, len(run.enq))
	for id := range run.enq {
		all = append(all, uuid.MustParse(id))
	}
	rows, err := b.st.Pool().Query(ctx, `SELECT notification_id, started_at FROM delivery_attempts WHERE notification_id = ANY($1) AND attempt_no = 1`, all)
	if err != nil {
		return err
	}
	defer rows.Close()
	var id uuid.UUID
	var at time.Time
	for rows.Next() {
		if err := rows.Scan(&id, &at); err != nil {
			return err
		}
		run.first[id.String()] = at
	}
	return rows.Err()
}

// receiverTimes reads from the receiver when it got attempt 1 of each sent
// notification.
func (b *bench) receiverTimes(run *steadyRun) error {
	resp, err := b.http.Get(b.recvURL + "/_dump")
	if err != nil {
		return err
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
	return sc.Err()
}
