package query

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/ttlcache"
)

// Credential look-ups are cached for a short time: a receiver paging through
// its notifications would otherwise cost a database round trip per page
// for authentication alone, about a tenth of the API's CPU in the query
// benchmark.
//
// Changes made through the API (a key revoked, a producer deleted, a
// receiver deactivated) are published on invalidationChannel; every API
// process drops the matching entries when the message arrives, well within
// a second. A process that is not subscribed (Redis down, or not yet
// subscribed after a start or reconnect) does not use its cache at all, and
// drops it whole on (re)subscribing, so a missed message cannot leave a
// stale entry behind. Changes made in the database by hand, or whose
// message was lost in a publish that failed, are seen within apiKeyCacheTTL.
// The README documents both bounds; change them together.
const (
	apiKeyCacheTTL = 5 * time.Second
	// Enough for every active receiver of a large deployment; beyond it the
	// cache starts over rather than growing without bound.
	apiKeyCacheSize = 10000
	// unknownKeyTTL is how long a well-formed key found in no record is
	// refused without a database look-up. Keys are 256 random bits, so
	// no key issued later can collide with a cached unknown one: creating
	// a key never has to wait for, or clear, this cache.
	unknownKeyTTL  = 30 * time.Second
	unknownKeySize = 10000
	// touchEvery bounds how often one process records a key's last use.
	touchEvery = time.Minute

	invalidationChannel = "notifyd:auth:invalidate"
	// A subscription silent for livenessPing is pinged; one silent for
	// twice that is declared down and the cache is bypassed.
	livenessPing = 300 * time.Millisecond
)

// keyCache maps an API key's hash to its receiver.
type keyCache struct {
	*ttlcache.Cache[[32]byte, store.ReceiverKey]
}

func newKeyCache(ttl time.Duration, max int) *keyCache {
	return &keyCache{ttlcache.New[[32]byte, store.ReceiverKey](ttl, max)}
}

// forget drops every cached key of a receiver.
func (c *keyCache) forget(receiver uuid.UUID) {
	c.DeleteFunc(func(_ [32]byte, k store.ReceiverKey) bool { return k.ReceiverID == receiver })
}

// credentials caches what tokens resolve to, positively (receiver keys,
// producer records) and negatively (well-formed tokens matching nothing).
type credentials struct {
	keys      *keyCache
	producers *ttlcache.Cache[[32]byte, *store.Producer]
	unknown   *ttlcache.Cache[[32]byte, struct{}]
	touched   *ttlcache.Cache[uuid.UUID, struct{}]
	// live is true while subscribed to invalidations; only then are the
	// positive caches used.
	live atomic.Bool
	// gen changes on every invalidation, so a look-up that raced one does
	// not cache what it read before it.
	gen    atomic.Uint64
	logger *slog.Logger
}

func newCredentials() *credentials {
	return &credentials{
		keys:      newKeyCache(apiKeyCacheTTL, apiKeyCacheSize),
		producers: ttlcache.New[[32]byte, *store.Producer](apiKeyCacheTTL, apiKeyCacheSize),
		unknown:   ttlcache.New[[32]byte, struct{}](unknownKeyTTL, unknownKeySize),
		touched:   ttlcache.New[uuid.UUID, struct{}](touchEvery, apiKeyCacheSize),
		logger:    slog.Default(),
	}
}

// receiverKey resolves an API key's hash.
func (c *credentials) receiverKey(ctx context.Context, s *store.Store, sum [32]byte) (store.ReceiverKey, error) {
	live, gen := c.live.Load(), c.gen.Load()
	if live {
		if k, ok := c.keys.Get(sum); ok {
			c.touch(s.TouchAPIKey, k.KeyID)
			return k, nil
		}
	}
	if _, ok := c.unknown.Get(sum); ok {
		return store.ReceiverKey{}, store.ErrNotFound
	}
	k, err := s.ReceiverByAPIKey(ctx, sum[:])
	if errors.Is(err, store.ErrNotFound) {
		c.unknown.Put(sum, struct{}{})
	}
	if err != nil {
		return k, err
	}
	if live && c.gen.Load() == gen {
		c.keys.Put(sum, k)
	}
	c.touch(s.TouchAPIKey, k.KeyID)
	return k, nil
}

// producer resolves a producer token's hash.
func (c *credentials) producer(ctx context.Context, s *store.Store, sum [32]byte) (*store.Producer, error) {
	live, gen := c.live.Load(), c.gen.Load()
	if live {
		if p, ok := c.producers.Get(sum); ok {
			c.touch(s.TouchProducer, p.ID)
			return p, nil
		}
	}
	if _, ok := c.unknown.Get(sum); ok {
		return nil, store.ErrNotFound
	}
	p, err := s.ProducerByToken(ctx, sum[:])
	if errors.Is(err, store.ErrNotFound) {
		c.unknown.Put(sum, struct{}{})
	}
	if err != nil {
		return nil, err
	}
	if live && c.gen.Load() == gen {
		c.producers.Put(sum, p)
	}
	c.touch(s.TouchProducer, p.ID)
	return p, nil
}

// touch records a use of id at most once per touchEvery, off the request
// path: last_used_at is a hint for people, not worth a write per request.
func (c *credentials) touch(write func(context.Context, uuid.UUID) error, id uuid.UUID) {
	if _, ok := c.touched.Get(id); ok {
		return
	}
	c.touched.Put(id, struct{}{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := write(ctx, id); err != nil {
			c.logger.Debug("record credential use", "id", id, "err", err)
		}
	}()
}

// Invalidation messages: what changed, as kind ":" id.
const (
	invalidateReceiver = "receiver" // a receiver's keys or its active flag
	invalidateProducer = "producer" // a producer record
)

func invalidation(kind string, id uuid.UUID) string { return kind + ":" + id.String() }

// parseInvalidation reads a message; ok is false for anything malformed
// (Redis is shared: it is not trusted to carry only our messages).
func parseInvalidation(msg string) (kind string, id uuid.UUID, ok bool) {
	kind, raw, found := strings.Cut(msg, ":")
	if !found || (kind != invalidateReceiver && kind != invalidateProducer) {
		return "", uuid.Nil, false
	}
	id, ok = parseID(raw)
	return kind, id, ok
}

// apply drops what msg names from this process's caches.
func (c *credentials) apply(msg string) {
	kind, id, ok := parseInvalidation(msg)
	if !ok {
		c.logger.Warn("ignoring malformed credential invalidation", "message", msg)
		return
	}
	c.gen.Add(1)
	switch kind {
	case invalidateReceiver:
		c.keys.forget(id)
	case invalidateProducer:
		c.producers.DeleteFunc(func(_ [32]byte, p *store.Producer) bool { return p.ID == id })
	}
}

// drop empties the positive caches.
func (c *credentials) drop() {
	c.gen.Add(1)
	c.keys.DeleteFunc(func([32]byte, store.ReceiverKey) bool { return true })
	c.producers.DeleteFunc(func([32]byte, *store.Producer) bool { return true })
}

// invalidate applies a change at once in this process and publishes it to
// the others. A failed publish is logged: the others then see the change
// within apiKeyCacheTTL.
func (c *credentials) invalidate(ctx context.Context, rdb redis.UniversalClient, kind string, id uuid.UUID) {
	msg := invalidation(kind, id)
	c.apply(msg)
	if err := rdb.Publish(ctx, invalidationChannel, msg).Err(); err != nil {
		c.logger.Error("publish credential invalidation; other API processes see it within the cache TTL",
			"message", msg, "ttl", apiKeyCacheTTL, "err", err)
	}
}

// listen keeps this process subscribed to invalidations until ctx ends.
func (c *credentials) listen(ctx context.Context, rdb redis.UniversalClient) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		ps := rdb.Subscribe(ctx, invalidationChannel)
		if c.receive(ctx, ps) {
			backoff = 50 * time.Millisecond
		}
		_ = ps.Close()
		c.live.Store(false)
		c.drop()
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// receive handles messages until the subscription fails or goes silent;
// it reports whether it was ever subscribed.
func (c *credentials) receive(ctx context.Context, ps *redis.PubSub) bool {
	subscribed, pinged := false, false
	for {
		msg, err := ps.ReceiveTimeout(ctx, livenessPing)
		if err != nil {
			var ne net.Error
			if ctx.Err() == nil && !pinged && errors.As(err, &ne) && ne.Timeout() && ps.Ping(ctx) == nil {
				pinged = true
				continue
			}
			// Logged once per loss, not on every retry of an outage.
			if ctx.Err() == nil && subscribed {
				c.logger.Warn("credential invalidations: subscription lost; cache bypassed until it is back", "err", err)
			}
			return subscribed
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				// Whatever was published while unsubscribed is lost:
				// start from nothing.
				c.drop()
				subscribed = true
				c.live.Store(true)
				c.logger.Debug("credential invalidations: subscribed")
			}
		case *redis.Message:
			c.apply(m.Payload)
		}
	}
}
