package query

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
)

// API key look-ups are cached for a short time: a receiver paging through
// its notifications would otherwise cost a database round trip per page
// for authentication alone, about a tenth of the API's CPU in the query
// benchmark.
//
// The price is staleness, bounded by apiKeyCacheTTL: a receiver deactivated
// (or whose key is replaced in the database) through another API process
// keeps being served by this one for at most that long. Changes made
// through this process (PATCH /v1/receivers/{id}) take effect at once. The
// README documents the bound; change both together.
const (
	apiKeyCacheTTL = 5 * time.Second
	// Enough for every active receiver of a large deployment; beyond it the
	// cache starts over rather than growing without bound.
	apiKeyCacheSize = 10000
)

type keyCache struct {
	ttl time.Duration
	max int
	now func() time.Time // tests move time forward

	mu      sync.Mutex
	entries map[[32]byte]keyEntry
}

type keyEntry struct {
	key     store.ReceiverKey
	expires time.Time
}

func newKeyCache(ttl time.Duration, max int) *keyCache {
	return &keyCache{ttl: ttl, max: max, now: time.Now, entries: make(map[[32]byte]keyEntry)}
}

func (c *keyCache) get(sum [32]byte) (store.ReceiverKey, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[sum]
	if !ok {
		return store.ReceiverKey{}, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, sum)
		return store.ReceiverKey{}, false
	}
	return e.key, true
}

func (c *keyCache) put(sum [32]byte, k store.ReceiverKey) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for s, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, s)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[sum] = keyEntry{key: k, expires: now.Add(c.ttl)}
}

// forget drops every cached key of a receiver, so a change made through
// this process is seen by its next request.
func (c *keyCache) forget(receiver uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, e := range c.entries {
		if e.key.ReceiverID == receiver {
			delete(c.entries, s)
		}
	}
}
