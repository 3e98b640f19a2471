// Package registry mirrors which receivers exist (and are active), and which
// restrict callback overrides to which hosts, into Redis, so that producers
// using the Go client can reject a notification for an unknown receiver or a
// refused callback host without a connection to notifyd's Postgres.
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
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/tasks"
)

// Key is the Redis hash: receiver id → "1" (active) or "0" (inactive).
const Key = "notifyd:receivers"

// HostsKey is the Redis hash: receiver id → its callback_hosts, comma
// separated ("" for an empty list), for receivers that restrict callback
// overrides; a receiver without a field is unrestricted. It is a hash of
// its own so that Go clients older than callback_hosts keep reading Key.
const HostsKey = "notifyd:receiver_callback_hosts"

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

// PublishCallbackHosts records one receiver's callback_hosts (nil: no
// restriction).
func PublishCallbackHosts(ctx context.Context, rdb redis.UniversalClient, id uuid.UUID, hosts []string) error {
	var err error
	if hosts == nil {
		err = rdb.HDel(ctx, HostsKey, id.String()).Err()
	} else {
		err = rdb.HSet(ctx, HostsKey, id.String(), strings.Join(hosts, ",")).Err()
	}
	if err != nil {
		return fmt.Errorf("publish callback hosts of %s: %w", id, err)
	}
	return nil
}

// SyncCallbackHosts replaces the whole hosts hash in one transaction, so a
// restriction lifted while a publish was lost does not linger.
func SyncCallbackHosts(ctx context.Context, rdb redis.UniversalClient, hosts map[uuid.UUID][]string) error {
	values := make([]any, 0, 2*len(hosts)+2)
	for id, h := range hosts {
		values = append(values, id.String(), strings.Join(h, ","))
	}
	values = append(values, loadedField, "1")
	_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, HostsKey)
		p.HSet(ctx, HostsKey, values...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync callback hosts: %w", err)
	}
	return nil
}

// CallbackHosts returns a receiver's callback_hosts as the mirror has them:
// nil when it does not restrict overrides.
func CallbackHosts(ctx context.Context, rdb redis.UniversalClient, id uuid.UUID) ([]string, error) {
	vals, err := rdb.HMGet(ctx, HostsKey, id.String(), loadedField).Result()
	if err != nil {
		return nil, fmt.Errorf("look up callback hosts of %s: %w", id, err)
	}
	v, restricted := vals[0].(string)
	switch {
	case restricted && v == "":
		return []string{}, nil
	case restricted:
		return strings.Split(v, ","), nil
	case vals[1] == nil:
		return nil, ErrNotLoaded
	}
	return nil, nil
}

// Lister reads every receiver's active flag and callback_hosts from the
// source of truth.
type Lister interface {
	ListReceiverStates(ctx context.Context) (map[uuid.UUID]bool, error)
	ReceiverCallbackHosts(ctx context.Context) (map[uuid.UUID][]string, error)
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
		var hosts map[uuid.UUID][]string
		if err == nil {
			hosts, err = l.ReceiverCallbackHosts(ctx)
		}
		if err == nil {
			err = SyncCallbackHosts(ctx, rdb, hosts)
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

// ShardsKey holds the workers' NOTIFYD_QUEUE_SHARDS, so that producers'
// Go clients queue each notification on the shard the workers expect
// without a setting of their own. A client that finds no value (Redis
// restarted empty, an older notifyd) queues on the unsharded queues, which
// every worker consumes.
const ShardsKey = "notifyd:queue_shards"

// PublishQueueShards records the workers' shard count.
func PublishQueueShards(ctx context.Context, rdb redis.UniversalClient, shards int) error {
	if err := rdb.Set(ctx, ShardsKey, max(shards, 1), 0).Err(); err != nil {
		return fmt.Errorf("publish queue shards: %w", err)
	}
	return nil
}

// ErrBadShards: the published shard count is not a number in range.
var ErrBadShards = errors.New("registry: malformed queue shard count")

// QueueShards reads the published shard count: 1 when none is published.
// A value that is not a shard count is an error (ErrBadShards) rather than
// a guess; the caller falls back to the unsharded queues.
func QueueShards(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	v, err := rdb.Get(ctx, ShardsKey).Result()
	if errors.Is(err, redis.Nil) {
		return 1, nil
	}
	if err != nil {
		return 1, fmt.Errorf("read queue shards: %w", err)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > tasks.MaxQueueShards {
		return 1, fmt.Errorf("%w: %q", ErrBadShards, v)
	}
	return n, nil
}

// KeepQueueShards publishes shards now and then every interval until ctx
// ends, so a Redis that restarted empty learns it again.
func KeepQueueShards(ctx context.Context, rdb redis.UniversalClient, shards int, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := PublishQueueShards(ctx, rdb, shards); err != nil && ctx.Err() == nil {
			logger.Warn("publishing the queue shard count failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
