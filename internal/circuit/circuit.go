// Package circuit is the fleet-wide record of receivers' open circuits in
// Redis, shared by every worker process and the API.
//
// Each worker keeps its own breaker per receiver as a cache it consults on
// every delivery without a round trip (worker/circuitstate.go). What the
// fleet agrees on lives here:
//
//   - a hash (Key) with one field per receiver whose circuit is open: when
//     the open period ends and how long it was;
//   - a counter per receiver of failed attempts fleet-wide since the last
//     success a counting process saw, which opens the circuit when it
//     reaches the threshold;
//   - a pub/sub channel (Channel) on which every change is announced with
//     the receiver's id. A subscriber reads the receiver's field back rather
//     than trusting the message, so messages arriving out of order, twice,
//     or from another installation sharing the server cannot leave a stale
//     state behind.
//
// Redis losing the hash (a restart) closes every circuit: the fleet errs
// toward delivering.
//
// It must not decide when a circuit opens or closes (the worker's breakers
// do): it stores and announces what they decided.
package circuit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

const (
	// Key is the hash of open circuits: receiver id → "untilMs:cooldownMs".
	Key = "notifyd:circuit:open"
	// Channel announces a change of a receiver's circuit; the message is
	// the receiver's id.
	Channel = "notifyd:circuit:changed"
)

// ErrMalformed is returned for a stored state that cannot be read.
var ErrMalformed = errors.New("circuit: malformed state")

// Open is an open circuit as the fleet records it.
type Open struct {
	// Until is when the open period ends and a probe may go.
	Until time.Time
	// Cooldown is the length of the current open period.
	Cooldown time.Duration
}

func failuresKey(receiver uuid.UUID) string { return "notifyd:circuit:failures:" + receiver.String() }

func encode(o Open) string {
	return strconv.FormatInt(o.Until.UnixMilli(), 10) + ":" + strconv.FormatInt(o.Cooldown.Milliseconds(), 10)
}

func decode(s string) (Open, error) {
	until, cooldown, ok := strings.Cut(s, ":")
	u, err1 := strconv.ParseInt(until, 10, 64)
	c, err2 := strconv.ParseInt(cooldown, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return Open{}, fmt.Errorf("%w: %q", ErrMalformed, s)
	}
	return Open{Until: time.UnixMilli(u), Cooldown: time.Duration(c) * time.Millisecond}, nil
}

// SetOpen records receiver's circuit as open and announces it. The failure
// count starts again from zero for when the circuit closes.
func SetOpen(ctx context.Context, rdb redis.UniversalClient, receiver uuid.UUID, o Open) error {
	err := writeThenAnnounce(ctx, rdb, receiver, func(p redis.Pipeliner) {
		p.HSet(ctx, Key, receiver.String(), encode(o))
		p.Del(ctx, failuresKey(receiver))
	})
	if err != nil {
		return fmt.Errorf("circuit: open %s: %w", receiver, err)
	}
	return nil
}

// Close records receiver's circuit as closed, with no failures counted, and
// announces it. It serves both a success seen by a worker and an operator's
// reset.
func Close(ctx context.Context, rdb redis.UniversalClient, receiver uuid.UUID) error {
	err := writeThenAnnounce(ctx, rdb, receiver, func(p redis.Pipeliner) {
		p.HDel(ctx, Key, receiver.String())
		p.Del(ctx, failuresKey(receiver))
	})
	if err != nil {
		return fmt.Errorf("circuit: close %s: %w", receiver, err)
	}
	return nil
}

// writeThenAnnounce runs write, then announces receiver's change, so that
// the field is written before the announcement that makes subscribers read
// it. On one server that is one pipeline on one connection. A cluster
// client splits a pipeline by node and runs the parts concurrently (Key,
// the failure counters and the channel hash to different slots), so there
// the announcement waits for the write: one more round trip, on a circuit
// change only.
func writeThenAnnounce(ctx context.Context, rdb redis.UniversalClient, receiver uuid.UUID, write func(redis.Pipeliner)) error {
	if _, cluster := rdb.(*redis.ClusterClient); cluster {
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { write(p); return nil }); err != nil {
			return err
		}
		return rdb.Publish(ctx, Channel, receiver.String()).Err()
	}
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		write(p)
		p.Publish(ctx, Channel, receiver.String())
		return nil
	})
	return err
}

// ResetFailures forgets the failures counted for receiver, without
// announcing anything (its circuit is closed).
func ResetFailures(ctx context.Context, rdb redis.UniversalClient, receiver uuid.UUID) error {
	if err := rdb.Del(ctx, failuresKey(receiver)).Err(); err != nil {
		return fmt.Errorf("circuit: reset failures of %s: %w", receiver, err)
	}
	return nil
}

// AddFailures counts n more failed attempts of receiver fleet-wide and
// returns the total. The count expires window after the last failure, so
// failures far apart never add up to an open circuit.
func AddFailures(ctx context.Context, rdb redis.UniversalClient, receiver uuid.UUID, n int, window time.Duration) (int, error) {
	var incr *redis.IntCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.IncrBy(ctx, failuresKey(receiver), int64(n))
		p.PExpire(ctx, failuresKey(receiver), window)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("circuit: count failure of %s: %w", receiver, err)
	}
	return int(incr.Val()), nil
}

// Get reads receiver's circuit: ok is false when it is closed.
func Get(ctx context.Context, rdb redis.UniversalClient, receiver uuid.UUID) (o Open, ok bool, err error) {
	s, err := rdb.HGet(ctx, Key, receiver.String()).Result()
	if errors.Is(err, redis.Nil) {
		return Open{}, false, nil
	}
	if err != nil {
		return Open{}, false, fmt.Errorf("circuit: read %s: %w", receiver, err)
	}
	o, err = decode(s)
	if err != nil {
		return Open{}, false, fmt.Errorf("circuit: read %s: %w", receiver, err)
	}
	return o, true, nil
}

// All reads every open circuit. A malformed field is skipped (a later
// change of that receiver overwrites it).
func All(ctx context.Context, rdb redis.UniversalClient) (map[uuid.UUID]Open, error) {
	fields, err := rdb.HGetAll(ctx, Key).Result()
	if err != nil {
		return nil, fmt.Errorf("circuit: read all: %w", err)
	}
	out := make(map[uuid.UUID]Open, len(fields))
	for k, v := range fields {
		id, err1 := uuid.Parse(k)
		o, err2 := decode(v)
		if err1 == nil && err2 == nil {
			out[id] = o
		}
	}
	return out, nil
}

// CountOpen is how many receivers' circuits are open fleet-wide (or
// probing, past their open period but not closed yet): one HLEN, cheap
// enough for every metrics scrape.
func CountOpen(ctx context.Context, rdb redis.UniversalClient) (int64, error) {
	n, err := rdb.HLen(ctx, Key).Result()
	if err != nil {
		return 0, fmt.Errorf("circuit: count open: %w", err)
	}
	return n, nil
}
