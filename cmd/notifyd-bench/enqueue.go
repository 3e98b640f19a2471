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
