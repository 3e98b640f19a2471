package query

import (
	"time"

	"github.com/google/uuid"

	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/ttlcache"
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

// keyCache maps an API key's hash to its receiver.
type keyCache struct {
	*ttlcache.Cache[[32]byte, store.ReceiverKey]
}

func newKeyCache(ttl time.Duration, max int) *keyCache {
	return &keyCache{ttlcache.New[[32]byte, store.ReceiverKey](ttl, max)}
}

// forget drops every cached key of a receiver, so a change made through
// this process is seen by its next request.
func (c *keyCache) forget(receiver uuid.UUID) {
	c.DeleteFunc(func(_ [32]byte, k store.ReceiverKey) bool { return k.ReceiverID == receiver })
}
