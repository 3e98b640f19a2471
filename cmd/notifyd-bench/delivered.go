package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

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

// resetQueue empties the bench's Redis database between runs (leftover
// tasks of one scenario must not load the next), republishes the receiver
// registry and clears the receiver's records.
func (b *bench) resetQueue(ctx context.Context) error {
	if err := b.rdb.FlushDB(ctx).Err(); err != nil {
		return err
	}
	if err := syncRegistry(ctx, b.st, b.rdb); err != nil {
		return err
	}
	resp, err := b.http.Post(b.recvURL+"/_reset", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
