// Package registry mirrors which receivers exist (and are active) into Redis,
// so that producers using the Go client can reject a notification for an
// unknown receiver without a connection to notifyd's Postgres.
//
// Postgres is the source of truth. The API publishes every change, and every
// notifyd process re-publishes the whole table periodically, so a Redis that
// restarted empty is filled again within one sync interval.
//
// It must not be trusted as the source of truth: a receiver missing from the
// mirror may still exist, and workers check Postgres.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Key is the Redis hash: receiver id → "1" (active) or "0" (inactive).
const Key = "notifyd:receivers"

// loadedField marks a hash that has been filled by a full sync.
const loadedField = "_loaded"

// State of a receiver as the registry knows it.
type State int

const (
	Unknown State = iota
	Active
	Inactive
)

// ErrNotLoaded means the registry is empty (Redis restarted and no notifyd
// process has re-synced yet): the caller cannot tell whether a receiver exists.
var ErrNotLoaded = errors.New("receiver registry not loaded yet")

// Publish records one receiver's state.
func Publish(ctx context.Context, rdb redis.UniversalClient, id uuid.UUID, active bool) error {
	if err := rdb.HSet(ctx, Key, id.String(), flag(active)).Err(); err != nil {
		return fmt.Errorf("publish receiver %s: %w", id, err)
	}
	return nil
}

// Sync writes every receiver's state and marks the registry loaded.
func Sync(ctx context.Context, rdb redis.UniversalClient, states map[uuid.UUID]bool) error {
	values := make([]any, 0, 2*len(states)+2)
	for id, active := range states {
		values = append(values, id.String(), flag(active))
	}
	values = append(values, loadedField, "1")
	if err := rdb.HSet(ctx, Key, values...).Err(); err != nil {
		return fmt.Errorf("sync receiver registry: %w", err)
	}
	return nil
}

// Lookup returns a receiver's state in one round trip.
func Lookup(ctx context.Context, rdb redis.UniversalClient, id uuid.UUID) (State, error) {
	vals, err := rdb.HMGet(ctx, Key, id.String(), loadedField).Result()
	if err != nil {
		return Unknown, fmt.Errorf("look up receiver %s: %w", id, err)
	}
	switch vals[0] {
	case "1":
		return Active, nil
	case "0":
		return Inactive, nil
	}
	if vals[1] == nil {
		return Unknown, ErrNotLoaded
	}
	return Unknown, nil
}

func flag(active bool) string {
	if active {
		return "1"
	}
	return "0"
}

// Lister reads every receiver's active flag from the source of truth.
type Lister interface {
	ListReceiverStates(ctx context.Context) (map[uuid.UUID]bool, error)
}

// Keep syncs the registry from l now and then every interval until ctx
// ends, so a Redis that restarted empty is repaired within one interval.
func Keep(ctx context.Context, l Lister, rdb redis.UniversalClient, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		states, err := l.ListReceiverStates(ctx)
		if err == nil {
			err = Sync(ctx, rdb, states)
		}
		if err != nil && ctx.Err() == nil {
			logger.Warn("receiver registry sync failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
