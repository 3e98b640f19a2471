package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/notifyd/notifyd/notifier"
)

// paths are the three ways a producer hands notifyd a notification.
var paths = []string{"go", "http", "outbox"}

// sendFunc hands one notification to notifyd and returns its id.
type sendFunc func(ctx context.Context, n notifier.Notification) (string, error)

// producers send at a steady rate, round robin over the paths and the
// receivers, each notification retried with its key until it is accepted,
// as a real producer would through the faults.
type producers struct {
	send      map[string]sendFunc
	receivers []string
	rate      int // notifications per second, all paths together
	giveUp    time.Duration

	sent    atomic.Int64 // accepted
	retries atomic.Int64
	wg      sync.WaitGroup

	mu        sync.Mutex
	accepted  []Sent
	abandoned map[string]bool
}

// run sends until ctx ends, then waits for the sends in progress (each gives
// up giveUp after ctx ended).
func (p *producers) run(ctx context.Context) {
	p.abandoned = make(map[string]bool)
	stopRetrying := make(chan struct{})
	sem := make(chan struct{}, 64)
	tick := time.NewTicker(time.Second / time.Duration(p.rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			time.AfterFunc(p.giveUp, func() { close(stopRetrying) })
			p.wg.Wait()
			return
		case <-tick.C:
		}
		path := paths[i%len(paths)]
		n := notifier.Notification{
			ReceiverID: p.receivers[(i/len(paths))%len(p.receivers)], EventType: "trade.paid",
			IdempotencyKey: path + "-" + strconv.Itoa(i), Payload: json.RawMessage(`{"i":` + strconv.Itoa(i) + `}`),
		}
		sem <- struct{}{}
		p.wg.Add(1)
		go func() {
			defer func() { <-sem; p.wg.Done() }()
			p.one(path, n, stopRetrying)
		}()
	}
}

// one sends n until it is accepted or retrying stops.
func (p *producers) one(path string, n notifier.Notification, stop <-chan struct{}) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		id, err := p.send[path](ctx, n)
		cancel()
		if err == nil {
			p.mu.Lock()
			p.accepted = append(p.accepted, Sent{ID: id, Path: path, Key: n.IdempotencyKey})
			p.mu.Unlock()
			p.sent.Add(1)
			return
		}
		p.retries.Add(1)
		select {
		case <-stop:
			p.mu.Lock()
			p.abandoned[n.IdempotencyKey] = true
			p.mu.Unlock()
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// httpSend ingests over the APIs' HTTP endpoint, alternating between them.
func httpSend(c *cluster) sendFunc {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	var next atomic.Int64
	return func(ctx context.Context, n notifier.Notification) (string, error) {
		m := c.member("api", int(next.Add(1)))
		var out struct{ ID string }
		_, err := apiCall(ctx, hc, "POST", "http://"+m.addr+"/v1/notifications", producerToken, map[string]any{
			"receiver_id": n.ReceiverID, "event_type": n.EventType, "idempotency_key": n.IdempotencyKey, "payload": n.Payload,
		}, &out)
		if err == nil && out.ID == "" {
			err = fmt.Errorf("ingest: no id in the answer")
		}
		return out.ID, err
	}
}

// outboxSend writes the notification in the producer's own transaction
// (EnqueueTx); the relay moves it to notifyd.
func outboxSend(client *notifier.Client, db *pgxpool.Pool) sendFunc {
	return func(ctx context.Context, n notifier.Notification) (string, error) {
		tx, err := db.Begin(ctx)
		if err != nil {
			return "", fmt.Errorf("outbox begin: %w", err)
		}
		defer tx.Rollback(ctx)
		id, err := client.EnqueueTx(ctx, tx, n)
		if err != nil {
			return "", fmt.Errorf("outbox insert: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return "", fmt.Errorf("outbox commit: %w", err)
		}
		return id, nil
	}
}

// snapshot is what the producers have been told so far.
func (p *producers) snapshot() ([]Sent, map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ab := make(map[string]bool, len(p.abandoned))
	for k := range p.abandoned {
		ab[k] = true
	}
	return append([]Sent(nil), p.accepted...), ab
}
