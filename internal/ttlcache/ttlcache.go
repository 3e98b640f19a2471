// Package ttlcache holds values for a bounded time and in bounded number:
// look-ups that may be served a little stale (receivers in the worker and
// the notifier, API keys in the query API), each with the staleness bound
// its caller documents.
//
// It must not load values itself, nor know what it holds: a caller that
// needs one load per miss (singleflight) or negative caching adds it around
// Get and Put. It exists, rather than hashicorp/golang-lru/v2's expirable
// LRU, because the worker needs a per-entry expiry earlier than the TTL (a
// previous signing secret that stops being valid), tests need to move the
// clock to prove a staleness bound, and the library runs a cleanup
// goroutine per cache that every owner would have to close.
package ttlcache

import (
	"sync"
	"time"
)

// Cache maps keys to values that expire ttl after they were put, holding at
// most size entries. It is safe for concurrent use.
type Cache[K comparable, V any] struct {
	ttl  time.Duration
	size int

	mu      sync.RWMutex
	now     func() time.Time
	entries map[K]entry[V]
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns an empty cache whose entries live ttl, at most size of them.
func New[K comparable, V any](ttl time.Duration, size int) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, size: size, now: time.Now, entries: make(map[K]entry[V])}
}

// SetClock replaces the cache's clock (tests move time forward).
func (c *Cache[K, V]) SetClock(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// Get returns k's value unless it is missing or expired.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[k]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put stores v under k for the cache's ttl.
func (c *Cache[K, V]) Put(k K, v V) { c.PutUntil(k, v, time.Time{}) }

// PutUntil stores v under k until expires or for the cache's ttl, whichever
// ends first; a zero expires means the ttl.
//
// A full cache first drops its expired entries and, if that frees nothing,
// starts over empty: a burst of misses once in a while is cheaper than
// keeping an eviction order on every Get.
func (c *Cache[K, V]) PutUntil(k K, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if limit := now.Add(c.ttl); expires.IsZero() || limit.Before(expires) {
		expires = limit
	}
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.size {
		for key, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, key)
			}
		}
		if len(c.entries) >= c.size {
			clear(c.entries)
		}
	}
	c.entries[k] = entry[V]{v: v, expires: expires}
}

// DeleteFunc drops every entry for which del returns true.
func (c *Cache[K, V]) DeleteFunc(del func(K, V) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		if del(k, e.v) {
			delete(c.entries, k)
		}
	}
}

// Len is the number of entries held, expired ones included until a Put
// into a full cache drops them.
func (c *Cache[K, V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
