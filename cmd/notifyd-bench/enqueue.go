package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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

// notify sends notification i to the receiver pick chooses; at is when the
// call started, the moment latencies are measured from.
func (b *bench) notify(ctx context.Context, i int, pick target) (id string, at time.Time, err error) {
	r, key := pick(i)
	at = time.Now()
	id, err = b.client.Notify(ctx, notifier.Notification{
		ReceiverID: r.ID.String(), EventType: eventType, IdempotencyKey: key, Payload: b.payload(i),
	})
	if err != nil {
		return "", at, fmt.Errorf("notify %d: %w", i, err)
	}
	return id, at, nil
}

// produce calls send for every i in [0, n) from the configured number of
// producer goroutines, each taking the next i when its call returns, and
// stops them all at the first error, which it returns.
func (b *bench) produce(ctx context.Context, n int, send func(ctx context.Context, i int) error) error {
	return b.produceFrom(ctx, b.cfg.producers, n, send)
}

// produceFrom is produce with the given number of goroutines.
func (b *bench) produceFrom(ctx context.Context, goroutines, n int, send func(ctx context.Context, i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, goroutines)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range goroutines {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := send(ctx, i); err != nil {
					errc <- err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// enqueueAll sends n notifications through the Go client as fast as the
// producers go.
func (b *bench) enqueueAll(ctx context.Context, n int, pick target) error {
	return b.produce(ctx, n, func(ctx context.Context, i int) error {
		_, _, err := b.notify(ctx, i, pick)
		return err
	})
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
		wg.Go(func() {
			id, at, err := b.notify(ctx, i, pick)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			onSent(i, id, at)
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

// producers runs a sender in the background while the caller waits for
// what it sends to be processed.
type producers struct {
	// ctx is cancelled, with the sender's error as its cause, when the
	// sender fails, so that a wait on it ends at once.
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error
	end    time.Time // when the sender returned
}

func startProducers(ctx context.Context, send func(context.Context) error) *producers {
	p := &producers{done: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancelCause(ctx)
	go func() {
		defer close(p.done)
		p.err = send(p.ctx)
		p.end = time.Now()
		if p.err != nil {
			p.cancel(p.err)
		}
	}()
	return p
}

// wait returns the sender's error once it has returned.
func (p *producers) wait() error {
	<-p.done
	return p.err
}

// failed returns the sender's error if it has already failed.
func (p *producers) failed() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// stop cancels the sender and waits for it (deferred: no producer outlives
// its run).
func (p *producers) stop() {
	p.cancel(nil)
	<-p.done
}
