package metrics

import (
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notifyd/notifyd/internal/tasks"
)

// Queue depth is read from Redis when Prometheus scrapes, not counted by
// the processes: every producer, worker and the re-drive move tasks, and
// only Redis knows the sum.
var (
	queueTasksDesc = prometheus.NewDesc("notifyd_queue_tasks",
		"Tasks in each Asynq queue by state (pending, active, scheduled, retry, archived), read from Redis when scraped (cached briefly).",
		[]string{"queue", "state"}, nil)
	queueLatencyDesc = prometheus.NewDesc("notifyd_queue_latency_seconds",
		"How long the oldest pending task of each queue has waited to be taken (0 when none waits).",
		[]string{"queue"}, nil)
	queueReadErrorsDesc = prometheus.NewDesc("notifyd_queue_read_errors_total",
		"Scrapes whose queue depth could not be read from Redis (the queue metrics are then left out).",
		nil, nil)
)

// QueueCacheTTL is how long one read of the queues serves scrapes: several
// Prometheus servers, or a scrape retried, cost one read.
const QueueCacheTTL = 5 * time.Second

// QueueCollector reports the depth of notifyd's Asynq queues through the
// Inspector. A read is a few Redis commands per queue (asynq's statistics
// script); it is cached for the TTL, and concurrent scrapes wait for the
// read in progress instead of starting their own.
type QueueCollector struct {
	insp   *asynq.Inspector
	queues []string
	ttl    time.Duration

	mu     sync.Mutex
	readAt time.Time
	infos  []asynq.QueueInfo
	errs   float64
}

// NewQueueCollector reports queues (every one, even before its first task)
// through insp, caching each read for ttl.
func NewQueueCollector(insp *asynq.Inspector, queues []string, ttl time.Duration) *QueueCollector {
	return &QueueCollector{insp: insp, queues: slices.Sorted(slices.Values(queues)), ttl: ttl}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueTasksDesc
	ch <- queueLatencyDesc
	ch <- queueReadErrorsDesc
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.infos == nil || time.Since(c.readAt) >= c.ttl {
		infos, err := c.read()
		if err != nil {
			c.errs++
			c.infos = nil
		} else {
			c.infos, c.readAt = infos, time.Now()
		}
	}
	ch <- prometheus.MustNewConstMetric(queueReadErrorsDesc, prometheus.CounterValue, c.errs)
	for _, q := range c.infos {
		for _, s := range []struct {
			state string
			n     int
		}{{"pending", q.Pending}, {"active", q.Active}, {"scheduled", q.Scheduled}, {"retry", q.Retry}, {"archived", q.Archived}} {
			ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(s.n), q.Queue, s.state)
		}
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, q.Latency.Seconds(), q.Queue)
	}
}

// read asks Redis for every queue's counts: the configured ones and every
// delivery queue shard Redis knows (another shard count's included). Asynq
// knows a queue only once a task was put in it; one it does not know yet is
// empty.
func (c *QueueCollector) read() ([]asynq.QueueInfo, error) {
	known, err := c.insp.Queues()
	if err != nil {
		return nil, err
	}
	queues := c.queues
	for _, q := range tasks.QueuesAmong(known) {
		if !slices.Contains(queues, q) {
			queues = append(slices.Clip(queues), q)
		}
	}
	infos := make([]asynq.QueueInfo, 0, len(queues))
	for _, q := range queues {
		if !slices.Contains(known, q) {
			infos = append(infos, asynq.QueueInfo{Queue: q})
			continue
		}
		info, err := c.insp.GetQueueInfo(q)
		if err != nil {
			return nil, err
		}
		infos = append(infos, *info)
	}
	return infos, nil
}
