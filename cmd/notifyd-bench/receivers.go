package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/registry"
	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
)

// benchReceiver is a receiver the bench created, with its API key.
type benchReceiver struct {
	ID     uuid.UUID
	APIKey string
}

type receiverSpec struct {
	name    string
	url     string
	retry   *retry.Policy
	timeout time.Duration
}

func newAPIKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "nfy_" + base64.RawURLEncoding.EncodeToString(b)
}

// createReceivers inserts receivers straight into Postgres (as the admin API
// would) and publishes them to the Redis registry the Go client checks.
func createReceivers(ctx context.Context, st *store.Store, specs []receiverSpec) ([]benchReceiver, error) {
	out := make([]benchReceiver, 0, len(specs))
	for _, sp := range specs {
		secret, err := signing.NewSecret()
		if err != nil {
			return nil, err
		}
		key := newAPIKey()
		r := &store.Receiver{ID: uuid.New(), Name: sp.name, CallbackURL: sp.url, SigningSecret: secret, Retry: sp.retry, Timeout: sp.timeout}
		if err := st.CreateReceiver(ctx, r, store.HashAPIKey(key)); err != nil {
			return nil, err
		}
		out = append(out, benchReceiver{ID: r.ID, APIKey: key})
	}
	return out, nil
}

// syncRegistry publishes every receiver to Redis, as notifyd processes do
// at start; needed again after each FLUSHDB.
func syncRegistry(ctx context.Context, st *store.Store, rdb redis.UniversalClient) error {
	states, err := st.ListReceiverStates(ctx)
	if err != nil {
		return err
	}
	if len(states) == 0 {
		return errors.New("no receivers")
	}
	if err := registry.PublishQueueShards(ctx, rdb, queueShards()); err != nil {
		return err
	}
	return registry.Sync(ctx, rdb, states)
}

func (b *bench) createReceivers(ctx context.Context) error {
	cfg := b.cfg
	var specs []receiverSpec
	for i := range cfg.receivers {
		specs = append(specs, receiverSpec{name: fmt.Sprintf("ok-%d", i), url: fmt.Sprintf("%s/ok/%d", b.recvURL, i)})
	}
	var err error
	if b.okReceivers, err = createReceivers(ctx, b.st, specs); err != nil {
		return err
	}
	// Retry: fail every attempt but the last of the schedule. One receiver
	// per notification: a receiver failing many notifications in a row
	// opens notifyd's circuit breaker (10 consecutive failures), which then
	// defers retries by its cool-down on purpose; that is outage handling,
	// not the precision of the schedule this scenario measures.
	k := len(cfg.retryIntervals)
	policy := &retry.Policy{Intervals: cfg.retryIntervals}
	specs = specs[:0]
	for i := range cfg.retryN {
		specs = append(specs, receiverSpec{name: fmt.Sprintf("fail-%d", i), url: fmt.Sprintf("%s/fail/%d/%d", b.recvURL, k, i), retry: policy})
	}
	if b.failReceivers, err = createReceivers(ctx, b.st, specs); err != nil {
		return err
	}
	// Isolation: 30 % of the receivers hang until their timeout.
	b.hangCount = max(1, (cfg.receivers*3+5)/10)
	specs = specs[:0]
	for i := range cfg.receivers {
		sp := receiverSpec{name: fmt.Sprintf("iso-ok-%d", i), url: fmt.Sprintf("%s/ok/iso%d", b.recvURL, i)}
		if i < b.hangCount {
			sp = receiverSpec{name: fmt.Sprintf("iso-hang-%d", i), url: fmt.Sprintf("%s/hang/%d", b.recvURL, i), timeout: cfg.hangTimeout}
		}
		specs = append(specs, sp)
	}
	b.isoReceivers, err = createReceivers(ctx, b.st, specs)
	return err
}

func ids(rs []benchReceiver) []uuid.UUID {
	out := make([]uuid.UUID, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
