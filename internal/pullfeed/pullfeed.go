// Package pullfeed carries offers to pull receivers (delivery "pull") from
// the workers that make them to the API processes that hold the receivers'
// event streams, over Redis pub/sub: one channel per receiver, so an API
// process hears only the receivers it streams to.
//
// Pub/sub is fire and forget, and that is enough here: a stream catches up
// from Postgres when it (re)connects and again on every heartbeat, and a
// notification that is not acknowledged is offered again on its retry
// schedule. A lost message costs latency, never a notification.
package pullfeed

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

const channelPrefix = "notifyd:pull:"

// Offer is one notification offered to a receiver: attempt is its automatic
// attempt number (1…N), or minus the manual redelivery's number.
type Offer struct {
	NotificationID uuid.UUID
	Attempt        int
}

func channel(receiver uuid.UUID) string { return channelPrefix + receiver.String() }

// Publish announces an offer recorded for receiver to the API processes
// streaming to it.
func Publish(ctx context.Context, rdb redis.UniversalClient, receiver uuid.UUID, o Offer) error {
	msg := o.NotificationID.String() + " " + strconv.Itoa(o.Attempt)
	if err := rdb.Publish(ctx, channel(receiver), msg).Err(); err != nil {
		return fmt.Errorf("pullfeed: publish offer %s: %w", o.NotificationID, err)
	}
	return nil
}

// parse reads a message Publish wrote; anything else is refused (the
// stream then only ignores it).
func parse(payload string) (Offer, error) {
	id, attempt, ok := strings.Cut(payload, " ")
	if !ok {
		return Offer{}, fmt.Errorf("pullfeed: malformed offer %q", payload)
	}
	nid, err := uuid.Parse(id)
	if err != nil {
		return Offer{}, fmt.Errorf("pullfeed: malformed offer %q: %w", payload, err)
	}
	n, err := strconv.Atoi(attempt)
	if err != nil {
		return Offer{}, fmt.Errorf("pullfeed: malformed offer %q: %w", payload, err)
	}
	return Offer{NotificationID: nid, Attempt: n}, nil
}

// Feed is one stream's subscription to its receiver's offers. It holds a
// Redis connection of its own until Close.
type Feed struct {
	ps *redis.PubSub
	c  <-chan *redis.Message
}

// Subscribe subscribes to receiver's offers and returns once Redis has
// confirmed the subscription, so every offer published after it returns is
// heard: a stream subscribes first and catches up from Postgres second.
func Subscribe(ctx context.Context, rdb redis.UniversalClient, receiver uuid.UUID) (*Feed, error) {
	ps := rdb.Subscribe(ctx, channel(receiver))
	if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
		ps.Close()
		return nil, fmt.Errorf("pullfeed: subscribe: %w", err)
	}
	// A small buffer: a stream that falls behind loses messages, which its
	// periodic catch-up and the reminders make good.
	return &Feed{ps: ps, c: ps.Channel(redis.WithChannelSize(256))}, nil
}

// C is the channel of raw messages, for a select alongside other events;
// Parse reads one.
func (f *Feed) C() <-chan *redis.Message { return f.c }

// Parse reads a message from C.
func Parse(m *redis.Message) (Offer, error) { return parse(m.Payload) }

// Close ends the subscription and frees its connection.
func (f *Feed) Close() error { return f.ps.Close() }
