package notifier

import (
	"context"
	"sync"
	"time"

	"github.com/notifyd/notifyd/internal/registry"
)

// queueShards is the workers' queue shard count (NOTIFYD_QUEUE_SHARDS) as
// they publish it in Redis (registry.ShardsKey), read at most once per
// receiver cache TTL. The client has no setting of its own, so producers
// cannot disagree with the workers by configuration: until the count is
// read (or when it cannot be), notifications go to the unsharded queues,
// which every worker consumes whatever its shard count.
type queueShards struct {
	mu     sync.Mutex
	n      int
	readAt time.Time
}

// get returns the shard count, reading it again once ttl has passed. A
// failed read keeps the last count (1 if none was read: the unsharded
// queues, always consumed) until the next read is due, so that callers
// never queue up behind reads of a Redis that does not answer.
func (s *queueShards) get(ctx context.Context, c *Client) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n > 0 && time.Since(s.readAt) < c.opts.cacheTTL {
		return s.n
	}
	n, err := registry.QueueShards(ctx, c.rdb) // 1 on error
	if err != nil && s.n > 0 {
		n = s.n
	}
	s.n, s.readAt = n, time.Now()
	return s.n
}
