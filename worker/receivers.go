package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/notifyd/notifyd/internal/retry"
	"github.com/notifyd/notifyd/internal/signing"
	"github.com/notifyd/notifyd/internal/store"
)

// receiverTTL bounds how stale a worker's view of a receiver may be. Secret
// rotation tolerates it (the old secret keeps signing during the grace
// period); a changed callback URL or policy takes effect within it.
const receiverTTL = 10 * time.Second

// receiverConfig is a receiver prepared for delivery: merged policy and a
// ready signer, so the hot path does no parsing.
type receiverConfig struct {
	*store.Receiver
	policy  retry.Policy
	signer  *signing.Signer
	expires time.Time
}

type receiverGetter interface {
	GetReceiver(ctx context.Context, id uuid.UUID) (*store.Receiver, error)
}

type receiverCache struct {
	store    receiverGetter
	defaults retry.Policy
	mu       sync.RWMutex
	byID     map[uuid.UUID]*receiverConfig
	group    singleflight.Group
	now      func() time.Time
}

func newReceiverCache(s receiverGetter, defaults retry.Policy) *receiverCache {
	return &receiverCache{store: s, defaults: defaults, byID: make(map[uuid.UUID]*receiverConfig), now: time.Now}
}

func (c *receiverCache) get(ctx context.Context, id uuid.UUID) (*receiverConfig, error) {
	c.mu.RLock()
	rc, ok := c.byID[id]
	c.mu.RUnlock()
	if ok && c.now().Before(rc.expires) {
		return rc, nil
	}
	v, err, _ := c.group.Do(id.String(), func() (any, error) {
		r, err := c.store.GetReceiver(ctx, id)
		if err != nil {
			return nil, err
		}
		rc, err := c.prepare(r)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.byID[id] = rc
		c.mu.Unlock()
		return rc, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*receiverConfig), nil
}

func (c *receiverCache) prepare(r *store.Receiver) (*receiverConfig, error) {
	key, err := signing.ParseSecret(r.SigningSecret)
	if err != nil {
		return nil, fmt.Errorf("receiver %s: %w", r.ID, err)
	}
	keys := [][]byte{key}
	expires := c.now().Add(receiverTTL)
	if r.PreviousSecret != "" && r.PreviousSecretUntil != nil && c.now().Before(*r.PreviousSecretUntil) {
		if old, err := signing.ParseSecret(r.PreviousSecret); err == nil {
			keys = append(keys, old)
		}
		// Stop signing with the old secret on time, not up to a TTL late.
		if r.PreviousSecretUntil.Before(expires) {
			expires = *r.PreviousSecretUntil
		}
	}
	policy := c.defaults
	if r.Retry != nil {
		policy = r.Retry.Merge(c.defaults)
	}
	return &receiverConfig{Receiver: r, policy: policy, signer: signing.NewSigner(keys...), expires: expires}, nil
}
