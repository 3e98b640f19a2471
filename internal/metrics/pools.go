package metrics

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Connection pool statistics, read from the pools when scraped. Saturation
// shows as acquires that had to wait (and the time they waited) climbing
// while acquired connections sit at the maximum.
var (
	dbMaxDesc = prometheus.NewDesc("notifyd_db_pool_max_connections",
		"Largest number of connections the Postgres pool may open.", []string{"pool"}, nil)
	dbConnsDesc = prometheus.NewDesc("notifyd_db_pool_connections",
		"Postgres pool connections by state (acquired: in use, idle, constructing).", []string{"pool", "state"}, nil)
	dbAcquiresDesc = prometheus.NewDesc("notifyd_db_pool_acquires_total",
		"Connections taken from the Postgres pool.", []string{"pool"}, nil)
	dbWaitsDesc = prometheus.NewDesc("notifyd_db_pool_acquire_waits_total",
		"Acquires that found no idle connection and had to wait for one to be opened or returned.", []string{"pool"}, nil)
	dbWaitSecondsDesc = prometheus.NewDesc("notifyd_db_pool_acquire_wait_seconds_total",
		"Time acquires spent waiting for a connection.", []string{"pool"}, nil)
	dbCanceledDesc = prometheus.NewDesc("notifyd_db_pool_canceled_acquires_total",
		"Acquires given up because their context ended (a deadline hit while the pool was exhausted).", []string{"pool"}, nil)

	redisMaxDesc = prometheus.NewDesc("notifyd_redis_pool_max_connections",
		"Largest number of connections the Redis pool may open.", nil, nil)
	redisConnsDesc = prometheus.NewDesc("notifyd_redis_pool_connections",
		"Redis pool connections by state (idle, in_use).", []string{"state"}, nil)
	redisHitsDesc = prometheus.NewDesc("notifyd_redis_pool_hits_total",
		"Commands that found an idle connection in the Redis pool.", nil, nil)
	redisMissesDesc = prometheus.NewDesc("notifyd_redis_pool_misses_total",
		"Commands that found no idle connection in the Redis pool and opened or waited for one.", nil, nil)
	redisTimeoutsDesc = prometheus.NewDesc("notifyd_redis_pool_timeouts_total",
		"Commands that gave up waiting for a Redis connection (pool exhausted for PoolTimeout).", nil, nil)
	redisWaitSecondsDesc = prometheus.NewDesc("notifyd_redis_pool_wait_seconds_total",
		"Time commands spent waiting for a Redis connection.", nil, nil)
)

// DBPoolCollector reports pgx pool statistics, labelled by pool name
// ("notifyd" for notifyd's database, "outbox" for a relay's outbox).
type DBPoolCollector struct{ pools map[string]*pgxpool.Pool }

// NewDBPoolCollector reports pools under their names.
func NewDBPoolCollector(pools map[string]*pgxpool.Pool) *DBPoolCollector {
	return &DBPoolCollector{pools: pools}
}

// Describe implements prometheus.Collector.
func (c *DBPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dbMaxDesc, dbConnsDesc, dbAcquiresDesc, dbWaitsDesc, dbWaitSecondsDesc, dbCanceledDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *DBPoolCollector) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	for name, p := range c.pools {
		s := p.Stat()
		ch <- prometheus.MustNewConstMetric(dbMaxDesc, gauge, float64(s.MaxConns()), name)
		ch <- prometheus.MustNewConstMetric(dbConnsDesc, gauge, float64(s.AcquiredConns()), name, "acquired")
		ch <- prometheus.MustNewConstMetric(dbConnsDesc, gauge, float64(s.IdleConns()), name, "idle")
		ch <- prometheus.MustNewConstMetric(dbConnsDesc, gauge, float64(s.ConstructingConns()), name, "constructing")
		ch <- prometheus.MustNewConstMetric(dbAcquiresDesc, counter, float64(s.AcquireCount()), name)
		ch <- prometheus.MustNewConstMetric(dbWaitsDesc, counter, float64(s.EmptyAcquireCount()), name)
		ch <- prometheus.MustNewConstMetric(dbWaitSecondsDesc, counter, s.EmptyAcquireWaitTime().Seconds(), name)
		ch <- prometheus.MustNewConstMetric(dbCanceledDesc, counter, float64(s.CanceledAcquireCount()), name)
	}
}

// RedisPoolCollector reports go-redis pool statistics.
type RedisPoolCollector struct {
	stats    func() *redis.PoolStats
	maxConns func() int
}

// NewRedisPoolCollector reports the pool of rdb: a *redis.Client (single
// node or Sentinel failover), or a *redis.ClusterClient, whose statistics
// sum one pool per node, so its maximum is the pool size times the nodes it
// knows. Any other client reports nothing.
func NewRedisPoolCollector(rdb redis.UniversalClient) *RedisPoolCollector {
	switch c := rdb.(type) {
	case *redis.Client:
		size := c.Options().PoolSize
		return &RedisPoolCollector{stats: c.PoolStats, maxConns: func() int { return size }}
	case *redis.ClusterClient:
		size := c.Options().PoolSize
		return &RedisPoolCollector{stats: c.PoolStats, maxConns: func() int { return size * clusterNodes(c) }}
	}
	return &RedisPoolCollector{}
}

// clusterNodes counts the nodes (masters and replicas) c has a pool for,
// from its cached view of the cluster.
func clusterNodes(c *redis.ClusterClient) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var n atomic.Int64
	count := func(context.Context, *redis.Client) error { n.Add(1); return nil }
	_ = c.ForEachMaster(ctx, count)
	_ = c.ForEachSlave(ctx, count)
	return int(n.Load())
}

// Describe implements prometheus.Collector.
func (c *RedisPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{redisMaxDesc, redisConnsDesc, redisHitsDesc, redisMissesDesc, redisTimeoutsDesc, redisWaitSecondsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *RedisPoolCollector) Collect(ch chan<- prometheus.Metric) {
	if c.stats == nil {
		return
	}
	s := c.stats()
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(redisMaxDesc, gauge, float64(c.maxConns()))
	ch <- prometheus.MustNewConstMetric(redisConnsDesc, gauge, float64(s.IdleConns), "idle")
	ch <- prometheus.MustNewConstMetric(redisConnsDesc, gauge, float64(s.TotalConns-min(s.IdleConns, s.TotalConns)), "in_use")
	ch <- prometheus.MustNewConstMetric(redisHitsDesc, counter, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(redisMissesDesc, counter, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(redisTimeoutsDesc, counter, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(redisWaitSecondsDesc, counter, float64(s.WaitDurationNs)/1e9)
}
