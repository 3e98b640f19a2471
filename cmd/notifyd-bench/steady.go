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
