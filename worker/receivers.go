package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
	"github.com/notifyd/notifyd/internal/ttlcache"
)

// receiverTTL bounds how stale a worker's view of a receiver may be. Secret
// rotation tolerates it (the old secret keeps signing during the grace
// period); a changed callback URL or policy takes effect within it.
const receiverTTL = 10 * time.Second

// unhealthyTTL bounds how stale a worker's view of a failing or disabled
// receiver may be: a few receivers, read once a second by each worker.
const unhealthyTTL = time.Second

// receiverCacheSize bounds the receivers a worker keeps prepared; beyond it
// the cache starts over rather than growing without bound.
const receiverCacheSize = 10000

// receiverConfig is a receiver prepared for delivery: merged policy and a
// ready signer, so the hot path does no parsing.
type receiverConfig struct {
	*store.Receiver
	policy retry.Policy
	signer *signing.Signer
}

type receiverGetter interface {
	GetReceiver(ctx context.Context, id uuid.UUID) (*store.Receiver, error)
}

// receiverCache keeps receivers prepared for delivery for receiverTTL, and
// loads a missing one once however many deliveries ask for it at a time.
type receiverCache struct {
	store    receiverGetter
	defaults retry.Policy
	cache    *ttlcache.Cache[uuid.UUID, *receiverConfig]
	group    singleflight.Group
	// now is the clock an entry's expiry is computed on (a previous
	// secret's end, the unhealthy bound), the cache's own clock too.
	now func() time.Time
}

func newReceiverCache(s receiverGetter, defaults retry.Policy) *receiverCache {
	return &receiverCache{store: s, defaults: defaults, now: time.Now,
		cache: ttlcache.New[uuid.UUID, *receiverConfig](receiverTTL, receiverCacheSize)}
}

// setClock moves the whole cache onto now (tests): an expiry computed on
// the real clock but read on a test's would depend on how long the test
// waited to run.
func (c *receiverCache) setClock(now func() time.Time) {
	c.now = now
	c.cache.SetClock(now)
}

func (c *receiverCache) get(ctx context.Context, id uuid.UUID) (*receiverConfig, error) {
	if rc, ok := c.cache.Get(id); ok {
		return rc, nil
	}
	v, err, _ := c.group.Do(id.String(), func() (any, error) { return c.refresh(ctx, id) })
	if err != nil {
		return nil, err
	}
	return v.(*receiverConfig), nil
}

// refresh reads the receiver from Postgres again, past the cache (a change
// the worker must not act on up to receiverTTL late: an enable).
func (c *receiverCache) refresh(ctx context.Context, id uuid.UUID) (*receiverConfig, error) {
	r, err := c.store.GetReceiver(ctx, id)
	if err != nil {
		return nil, err
	}
	rc, expires, err := c.prepare(r)
	if err != nil {
		return nil, err
	}
	c.cache.PutUntil(id, rc, expires)
	return rc, nil
}

// prepare readies r for delivery; expires, when not zero, is when the
// prepared form goes stale before receiverTTL.
func (c *receiverCache) prepare(r *store.Receiver) (rc *receiverConfig, expires time.Time, err error) {
	now := c.now()
	signer, expires, err := signing.ForReceiver(r.SigningSecret, r.PreviousSecret, r.PreviousSecretUntil, now)
	if err != nil {
		return nil, expires, fmt.Errorf("receiver %s: %w", r.ID, err)
	}
	if r.Status == store.ReceiverFailing || r.Status == store.ReceiverDisabled {
		// A failing receiver may be disabled any moment (and a disabled one
		// enabled): its deliveries must see that within a second, not a TTL.
		if soon := now.Add(unhealthyTTL); expires.IsZero() || soon.Before(expires) {
			expires = soon
		}
	}
	policy := c.defaults
	if r.Retry != nil {
		policy = r.Retry.Merge(c.defaults)
	}
	return &receiverConfig{Receiver: r, policy: policy, signer: signer}, expires, nil
}
