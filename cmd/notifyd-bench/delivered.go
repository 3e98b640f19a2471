package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
)

type receiverStats struct {
	Requests  int64 `json:"requests"`
	Delivered int64 `json:"delivered"`
}

func (b *bench) receiverStats() (receiverStats, error) {
	var s receiverStats
	return s, getJSON(b.http, b.recvURL+"/_stats", &s)
}

// getJSON decodes the answer to a GET of u (a child's counters) into v.
func getJSON(client *http.Client, u string, v any) error {
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// deliveredCount counts delivered notifications of these receivers in
// Postgres.
func (b *bench) deliveredCount(ctx context.Context, receivers []uuid.UUID) (int, error) {
	var n int
	err := b.st.Pool().QueryRow(ctx, `SELECT count(*) FROM notifications WHERE receiver_id = ANY($1) AND status = 'delivered'`, receivers).Scan(&n)
	return n, err
}

// poll calls check every interval until it reports done or fails, ctx ends,
// or the deadline passes (the error is then late's).
func poll(ctx context.Context, every time.Duration, deadline time.Time, check func() (bool, error), late func() error) error {
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		if time.Now().After(deadline) {
			return late()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// waitDelivered waits until want notifications of receivers are delivered
// in Postgres (beyond base delivered before the run) and returns when it saw
// that. Progress comes from the receiver's count (cheap); Postgres is polled
// every 10 ms once the receiver has answered them all, so the end time is
// the moment the last row became visible as delivered, to within the poll
// interval.
func (b *bench) waitDelivered(ctx context.Context, label string, receivers []uuid.UUID, base, want int, start time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var answered int64
	err := poll(ctx, 100*time.Millisecond, deadline, func() (bool, error) {
		s, err := b.receiverStats()
		if err != nil {
			return false, err
		}
		answered = s.Delivered
		el := time.Since(start).Seconds()
		b.prog.update("%s: %s/%s delivered, %s", label, thousands(s.Delivered), thousands(int64(want)), fmtRate(float64(s.Delivered)/el))
		return s.Delivered >= int64(want), nil
	}, func() error {
		return fmt.Errorf("%s: only %d of %d answered by the receiver after %s", label, answered, want, timeout)
	})
	if err != nil {
		return time.Time{}, err
	}
	var n int
	err = poll(ctx, 10*time.Millisecond, deadline, func() (bool, error) {
		var err error
		n, err = b.deliveredCount(ctx, receivers)
		n -= base
		return n >= want, err
	}, func() error {
		return fmt.Errorf("%s: only %d of %d delivered in Postgres after %s", label, n, want, timeout)
	})
	return time.Now(), err
}

// cause prefers the reason a context was cancelled with (a producer's
// error) over the plain "context canceled" it produced.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}

// burstRun is one burst: notifications enqueued as fast as the producers
// go while a running notifyd delivers them.
type burstRun struct {
	start     time.Time // first enqueue
	enqueued  time.Time // last enqueue returned
	delivered time.Time // the last wanted one seen delivered in Postgres
	cpu       *CPUSplit // from start to delivered
}

// burst enqueues n notifications to the receivers pick chooses and waits
// until want of them to receivers are delivered, beyond base delivered
// before.
func (b *bench) burst(ctx context.Context, label string, n int, pick target, receivers []uuid.UUID, base, want int, timeout time.Duration) (*burstRun, error) {
	before := b.sampler.snapshot()
	run := &burstRun{start: time.Now()}
	p := startProducers(ctx, func(ctx context.Context) error { return b.enqueueAll(ctx, n, pick) })
	defer p.stop()
	end, err := b.waitDelivered(p.ctx, label, receivers, base, want, run.start, timeout)
	if err != nil {
		return nil, cause(p.ctx, err)
	}
	run.cpu = cpuDelta(before, b.sampler.snapshot())
	if err := p.wait(); err != nil {
		return nil, err
	}
	run.delivered, run.enqueued = end, p.end
	return run, nil
}

// seconds is the burst's length, first enqueue to last delivered.
func (r *burstRun) seconds() float64 { return r.delivered.Sub(r.start).Seconds() }
